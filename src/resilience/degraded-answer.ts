import type { CompleteResponse, RouteInfo, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";

/**
 * The alias's configured degraded answer, for callers that prefer one to an error. It is
 * never indistinguishable from a model's: provider "sluice", model "degraded", and
 * `route.degraded` set (README "Resilience").
 */
export function degradedResponse(message: string, route: RouteInfo): CompleteResponse {
  return {
    $typeName: "sluice.v1.CompleteResponse",
    id: `degraded-${Date.now().toString(36)}`,
    model: "degraded",
    provider: "sluice",
    message: {
      $typeName: "sluice.v1.Message",
      role: Role.ASSISTANT,
      content: [{ $typeName: "sluice.v1.ContentPart", part: { case: "text", value: message } }],
      toolCalls: [],
      toolCallId: "",
      name: "",
      reasoning: "",
    },
    finishReason: FinishReason.STOP,
    route,
  };
}

/** The same answer as a stream: start, one delta, done carrying the degraded route. */
export function* degradedStream(message: string, route: RouteInfo): Generator<StreamCompleteResponse> {
  yield {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: {
      case: "start",
      value: {
        $typeName: "sluice.v1.StreamStart",
        id: `degraded-${Date.now().toString(36)}`,
        model: "degraded",
        provider: "sluice",
      },
    },
  };
  yield {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "delta", value: { $typeName: "sluice.v1.ContentDelta", text: message } },
  };
  yield {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "done", value: { $typeName: "sluice.v1.StreamDone", finishReason: FinishReason.STOP, route } },
  };
}
