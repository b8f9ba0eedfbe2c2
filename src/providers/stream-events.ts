import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import type { FinishReason, Usage } from "../../gen/sluice/v1/chat_pb.js";

/**
 * The stream events every adapter yields, built as plain objects rather than with create():
 * protobuf-es messages are plain objects, the generated types make the compiler check every
 * field, and create() (a reflective walk filling in every default) costs many times more
 * per event on this hot path than an object literal.
 */

export function startEvent(id: string, model: string, provider: string): StreamCompleteResponse {
  return {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "start", value: { $typeName: "sluice.v1.StreamStart", id, model, provider } },
  };
}

export function textEvent(text: string): StreamCompleteResponse {
  return {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "delta", value: { $typeName: "sluice.v1.ContentDelta", text } },
  };
}

export function reasoningEvent(text: string): StreamCompleteResponse {
  return {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "reasoningDelta", value: { $typeName: "sluice.v1.ReasoningDelta", text } },
  };
}

export function toolCallEvent(index: number, id: string, name: string, args: string): StreamCompleteResponse {
  return {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "toolCallDelta", value: { $typeName: "sluice.v1.ToolCallDelta", index, id, name, arguments: args } },
  };
}

export function doneEvent(finishReason: FinishReason, usage: Usage): StreamCompleteResponse {
  return {
    $typeName: "sluice.v1.StreamCompleteResponse",
    event: { case: "done", value: { $typeName: "sluice.v1.StreamDone", finishReason, usage } },
  };
}
