import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ListModelsRequestSchema, ModelService, type ListModelsResponse } from "../../gen/sluice/v1/model_service_pb.js";
import {
  AnthropicParamError,
  anthropicErrorBody,
  anthropicErrorType,
  isAnthropicParamError,
  sseErrorEvent,
  toAnthropicError,
} from "../api/compat/anthropic/errors.js";
import { parseCountTokensRequest, parseMessagesRequest } from "../api/compat/anthropic/request.js";
import { messageJson } from "../api/compat/anthropic/response.js";
import { MessageStreamEncoder, ssePing } from "../api/compat/anthropic/stream.js";
import { createTokenEstimator, forProvider, type TokenEstimator } from "../limits/token-estimator.js";
import type { ActiveCalls } from "./active-calls.js";
import {
  answerJson,
  answerUnary,
  asConnectError,
  collectHeaders,
  type CompatFormat,
  type JsonBody,
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

export interface AnthropicCompatLaneOptions {
  /** The route table, prepared once for every lane: the same RPCs behind the same interceptor chain. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
  /** `server.sse.heartbeatMs`: an `event: ping` after this long without a write; 0: none. */
  readonly heartbeatMs: number;
  /** For count_tokens; default: one per process, loaded on first use. */
  readonly estimator?: TokenEstimator | undefined;
}

export const messagesPath = "/v1/messages";
export const countTokensPath = "/v1/messages/count_tokens";

let sharedEstimator: TokenEstimator | undefined;

/** Anthropic's wire format for the shared helpers (compat-http.ts). */
const anthropicFormat: CompatFormat = {
  protocol: "anthropic",
  isParamError: isAnthropicParamError,
  invalidJson: () => new AnthropicParamError(undefined, "the request body is not valid JSON (UTF-8)"),
  answerRefusal(res, status, headers, message) {
    answerJson(res, status, headers, anthropicErrorBody(anthropicErrorType(status), message));
  },
  answerError,
  callHeaders,
  heartbeat: ssePing,
  sseErrorEvent: (error, call) => sseErrorEvent(error, requestIdOf(call)),
};

/**
 * The Anthropic-compatible HTTP surface on the serving port: `POST /v1/messages` (unary
 * JSON, or server-sent events with `stream: true`) and `POST /v1/messages/count_tokens`.
 * Like the OpenAI lane (openai-compat-lane.ts), not a second pipeline: the Messages JSON is
 * translated into the canonical request (src/api/compat/anthropic/) and the call runs the
 * route table's own `Complete` or `StreamComplete` — the same interceptor chain
 * (authentication by `x-api-key` or `authorization: Bearer`, request id, access log,
 * telemetry) and the same services as a gRPC caller — through a FastCall. Answers are
 * translated back to Anthropic's shapes; errors to `{"type":"error","error":{type,message}}`
 * with the HTTP status of their Connect code, `retry-after`, `request-id`.
 *
 * count_tokens runs `ListModels` through the chain (authentication, the tenant's models: an
 * alias the caller may not use is a 404), then estimates the prompt with the gateway's
 * tokenizer, scaled for the alias's primary deployment's provider (token-estimator.ts
 * `forProvider`): an estimate, not the provider's count.
 *
 * A stream's headers go out with its first event or heartbeat (`event: ping`): an error
 * before that is an ordinary HTTP error; after it, an `event: error` ends the stream, never
 * `message_stop`.
 */
export function createAnthropicCompatLane(options: AnthropicCompatLaneOptions): FastLane {
  const { routes, active, heartbeatMs } = options;
  const completeRoute = routes.get(rpcPathOf(ChatService.method.complete)) as UnaryLaneRoute | undefined;
  const streamRoute = routes.get(rpcPathOf(ChatService.method.streamComplete)) as StreamLaneRoute | undefined;
  const modelsRoute = routes.get(rpcPathOf(ModelService.method.listModels)) as UnaryLaneRoute | undefined;

  return function anthropicCompatLane(req, res) {
    const path = pathOf(req.url);
    if (path === messagesPath) {
      if (completeRoute === undefined || streamRoute === undefined) return false;
    } else if (path === countTokensPath) {
      if (modelsRoute === undefined) return false;
    } else {
      return false;
    }
    if (methodAllowed(anthropicFormat, req, res, "POST")) void serve(req, res, path);
    return true;
  };

  async function serve(req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
    try {
      const body = await readJsonBody(anthropicFormat, options, req, res);
      if (body === undefined) return;
      if (path === countTokensPath) return await countTokens(modelsRoute!, req, res, path, body);
      let parsed: ReturnType<typeof parseMessagesRequest>;
      try {
        parsed = parseMessagesRequest(body.json);
      } catch (err) {
        return answerError(res, undefined, asConnectError(anthropicFormat, err));
      }
      const call = startCompatCall(anthropicFormat, parsed.stream ? streamRoute! : completeRoute!, req, res, path, active, body);
      if (parsed.stream) return await serveStream(streamRoute!, call, parsed.request, res);
      await answerUnary(anthropicFormat, call, res, async () => {
        const response = await completeRoute!.invoke(call, parsed.request);
        return messageJson(response.message as CompleteResponse);
      });
    } catch {
      abandonCall(res);
    }
  }

  async function countTokens(
    route: UnaryLaneRoute,
    req: NodeRequest,
    res: NodeResponse,
    path: string,
    body: JsonBody,
  ): Promise<void> {
    let request: CompleteRequest;
    try {
      request = parseCountTokensRequest(body.json);
    } catch (err) {
      return answerError(res, undefined, asConnectError(anthropicFormat, err));
    }
    const call = startCompatCall(anthropicFormat, route, req, res, path, active, body);
    await answerUnary(anthropicFormat, call, res, async () => {
      const response = (await route.invoke(call, create(ListModelsRequestSchema))).message as ListModelsResponse;
      const model = response.models.find((m) => m.alias === request.model);
      if (model === undefined) {
        throw new ConnectError(`model not found: ${request.model.slice(0, 64)}`, Code.NotFound);
      }
      const estimator = options.estimator ?? (sharedEstimator ??= createTokenEstimator());
      const tokens = await estimator.promptTokens(request);
      return JSON.stringify({ input_tokens: forProvider(tokens, model.deployments[0]?.providerType ?? "") });
    });
  }

  async function serveStream(route: StreamLaneRoute, call: FastCall, request: CompleteRequest, res: NodeResponse): Promise<void> {
    const encoder = new MessageStreamEncoder();
    let done = false;
    await serveSseStream({
      format: anthropicFormat,
      route,
      call,
      request,
      res,
      heartbeatMs,
      encode(message) {
        const event = message as StreamCompleteResponse;
        if (event.event.case === "done") done = true;
        return encoder.encode(event);
      },
      ended() {
        if (!done) throw new ConnectError("the stream ended without its last event", Code.Internal);
      },
    });
  }
}

function requestIdOf(call: FastCall | undefined): string | undefined {
  return call?.responseHeaders()?.get("x-request-id") ?? undefined;
}

/** The call's headers, and its request id also as `request-id` (the header Anthropic's SDKs read). */
function callHeaders(call: FastCall | undefined): Record<string, string> {
  const headers = collectHeaders(call);
  const id = headers["x-request-id"];
  if (id !== undefined) headers["request-id"] = id;
  return headers;
}

function answerError(res: NodeResponse, call: FastCall | undefined, error: ConnectError): void {
  if (res.destroyed) return;
  const { status, headers, type, message } = toAnthropicError(error);
  // The request id may come with the call's headers or with the error's metadata.
  const merged = { ...collectHeaders(call), ...headers };
  const id = merged["x-request-id"];
  if (id !== undefined) merged["request-id"] = id;
  answerJson(res, status, merged, anthropicErrorBody(type, message, id));
}
