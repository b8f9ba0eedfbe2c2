import { create } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { CompleteResponse, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ListModelsRequestSchema, ModelService, type ListModelsResponse } from "../../gen/sluice/v1/model_service_pb.js";
import {
  errorBody,
  errorType,
  isParamError,
  OpenAiParamError,
  sseErrorEvent,
  toOpenAiError,
} from "../api/compat/openai/errors.js";
import { parseChatRequest } from "../api/compat/openai/request.js";
import { completionJson, modelListJson } from "../api/compat/openai/response.js";
import { ChatChunkEncoder, sseHeartbeat } from "../api/compat/openai/stream.js";
import type { ActiveCalls } from "./active-calls.js";
import {
  answerJson,
  answerUnary,
  asConnectError,
  collectHeaders,
  type CompatFormat,
  methodAllowed,
  pathOf,
  readJsonBody,
  rpcPathOf,
  serveSseStream,
  startCompatCall,
} from "./compat-http.js";
import { abandonCall, type FastCall, type FastLane, type NodeRequest, type NodeResponse } from "./fast-call.js";
import type { LaneRoutes, StreamLaneRoute, UnaryLaneRoute } from "./lane-routes.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

export interface OpenAiCompatLaneOptions {
  /** The route table, prepared once for every lane: the same RPCs behind the same interceptor chain. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
  /** `server.sse.heartbeatMs`: a `: keep-alive` comment after this long without a write; 0: none. */
  readonly heartbeatMs: number;
}

export const chatCompletionsPath = "/v1/chat/completions";
export const modelsPath = "/v1/models";

/** OpenAI's `error.code` for the errors the lane answers before any call. */
const refusalCodes = { 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type" } as const;

/** OpenAI's wire format for the shared helpers (compat-http.ts). */
const openAiFormat: CompatFormat = {
  protocol: "openai",
  isParamError,
  invalidJson: () => new OpenAiParamError(undefined, "the request body is not valid JSON (UTF-8)", "invalid_json"),
  answerRefusal(res, status, headers, message) {
    answerJson(res, status, headers, errorBody(message, errorType(status), null, refusalCodes[status]));
  },
  answerError,
  callHeaders: collectHeaders,
  heartbeat: sseHeartbeat,
  sseErrorEvent: (error) => sseErrorEvent(error),
};

/**
 * The OpenAI-compatible HTTP surface on the serving port: `POST /v1/chat/completions`
 * (unary JSON, or server-sent events with `stream: true`) and `GET /v1/models`. Not a
 * second pipeline: the OpenAI JSON is translated into the canonical request
 * (src/api/compat/openai/), and the call runs the route table's own `Complete`,
 * `StreamComplete` or `ListModels` — the same interceptor chain (access log, request id,
 * telemetry, authentication) and the same services (validation, routing, admission,
 * resilience) as a gRPC or Connect caller — through a FastCall (cancellation when the
 * caller leaves, active-call tracking for the drain). Answers are translated back to
 * OpenAI's shapes; errors to `{"error":{message,type,param,code}}` with the HTTP status of
 * their Connect code (errors.ts).
 *
 * A stream's headers (200, `text/event-stream`) go out with its first chunk, or with the
 * first heartbeat when the model is slow to start: an error before that (an unknown model,
 * a bad key, a limit) is an ordinary HTTP error an SDK can retry; after it, an SSE
 * `data: {"error":…}` event ends the stream, never `[DONE]`.
 *
 * No deadline: OpenAI clients send none (they time out on their own side, which closes the
 * connection and cancels the call). Only these two paths are taken; anything else is left
 * to the other lanes and connect-node.
 */
export function createOpenAiCompatLane(options: OpenAiCompatLaneOptions): FastLane {
  const { routes, active, heartbeatMs } = options;
  const completeRoute = routes.get(rpcPathOf(ChatService.method.complete)) as UnaryLaneRoute | undefined;
  const streamRoute = routes.get(rpcPathOf(ChatService.method.streamComplete)) as StreamLaneRoute | undefined;
  const modelsRoute = routes.get(rpcPathOf(ModelService.method.listModels)) as UnaryLaneRoute | undefined;

  return function openAiCompatLane(req, res) {
    const path = pathOf(req.url);
    if (path === chatCompletionsPath) {
      if (completeRoute === undefined || streamRoute === undefined) return false;
      if (methodAllowed(openAiFormat, req, res, "POST")) void serveChat(completeRoute, streamRoute, req, res, path);
      return true;
    }
    if (path === modelsPath) {
      if (modelsRoute === undefined) return false;
      if (methodAllowed(openAiFormat, req, res, "GET")) void serveModels(modelsRoute, req, res, path);
      return true;
    }
    return false;
  };

  async function serveChat(
    unary: UnaryLaneRoute,
    streaming: StreamLaneRoute,
    req: NodeRequest,
    res: NodeResponse,
    path: string,
  ): Promise<void> {
    try {
      const body = await readJsonBody(openAiFormat, options, req, res);
      if (body === undefined) return;
      let parsed: ReturnType<typeof parseChatRequest>;
      try {
        parsed = parseChatRequest(body.json);
      } catch (err) {
        return answerError(res, undefined, asConnectError(openAiFormat, err));
      }
      const call = startCompatCall(openAiFormat, parsed.stream ? streaming : unary, req, res, path, active, body);
      if (parsed.stream) {
        const encoder = new ChatChunkEncoder(parsed.includeUsage);
        return await serveSseStream({
          format: openAiFormat,
          route: streaming,
          call,
          request: parsed.request,
          res,
          heartbeatMs,
          encode: (message) => encoder.encode(message as StreamCompleteResponse),
        });
      }
      await answerUnary(openAiFormat, call, res, async () => {
        const response = await unary.invoke(call, parsed.request);
        return completionJson(response.message as CompleteResponse);
      });
    } catch {
      abandonCall(res);
    }
  }

  async function serveModels(route: UnaryLaneRoute, req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
    try {
      const call = startCompatCall(openAiFormat, route, req, res, path, active);
      await answerUnary(openAiFormat, call, res, async () => {
        const response = await route.invoke(call, create(ListModelsRequestSchema));
        return modelListJson(response.message as ListModelsResponse);
      });
    } catch {
      abandonCall(res);
    }
  }
}

function answerError(res: NodeResponse, call: FastCall | undefined, error: ConnectError): void {
  if (res.destroyed) return;
  const { status, headers, body } = toOpenAiError(error);
  answerJson(res, status, { ...collectHeaders(call), ...headers }, body);
}
