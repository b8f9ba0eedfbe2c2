import type { Writable } from "node:stream";
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
import { boundError } from "../errors/bounded-error.js";
import { createTokenEstimator, forProvider, type TokenEstimator } from "../limits/token-estimator.js";
import { decodeUtf8Strict } from "../wire/strict-utf8.js";
import type { ActiveCalls } from "./active-calls.js";
import { answerJson, collectHeaders, jsonContentType, pathOf, rpcPathOf, sseHeaders } from "./compat-http.js";
import { abandonCall, startFastCall, type FastCall, type FastLane, type NodeRequest, type NodeResponse } from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import type { LaneRoutes, StreamLaneRoute, UnaryLaneRoute } from "./lane-routes.js";
import { drained } from "./read-envelope.js";
import { readRequestBody } from "./read-body.js";
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
  const { routes, active, maxRequestBytes, requestBytes, heartbeatMs } = options;
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
    if (req.method !== "POST") {
      answerJson(res, 405, { allow: "POST" }, anthropicErrorBody(anthropicErrorType(405), "method not allowed: use POST"));
      return true;
    }
    void serve(req, res, path);
    return true;
  };

  async function serve(req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
    try {
      const body = await readJson(req, res);
      if (body === undefined) return;
      if (path === countTokensPath) return await countTokens(modelsRoute!, req, res, path, body);
      let parsed: ReturnType<typeof parseMessagesRequest>;
      try {
        parsed = parseMessagesRequest(body.json);
      } catch (err) {
        return answerError(res, undefined, asConnectError(err));
      }
      const route = parsed.stream ? streamRoute! : completeRoute!;
      const call = startFastCall(route.method, "anthropic", path, req.headers, res, undefined, active);
      // The raw body, for a signed request's digest (signed-request.ts): read before the call existed.
      call.bodyDigest()?.update(body.bytes);
      if (parsed.stream) return await serveStream(streamRoute!, call, parsed.request, res);
      let text: string;
      try {
        const response = await completeRoute!.invoke(call, parsed.request);
        text = messageJson(response.message as CompleteResponse);
      } catch (err) {
        call.end();
        return answerError(res, call, asConnectError(err));
      }
      call.end();
      answerJson(res, 200, callHeaders(call), text);
    } catch {
      abandonCall(res);
    }
  }

  /** The body as JSON, or undefined when an error was answered (415, 413, 400). */
  async function readJson(req: NodeRequest, res: NodeResponse): Promise<{ bytes: Uint8Array; json: unknown } | undefined> {
    const contentType = req.headers["content-type"];
    if (contentType === undefined || !jsonContentType.test(contentType)) {
      answerJson(res, 415, {}, anthropicErrorBody("invalid_request_error", "content-type must be application/json"));
      return undefined;
    }
    const compression = requestCompression(req.headers["content-encoding"]);
    if (compression === null) {
      answerJson(res, 415, {}, anthropicErrorBody("invalid_request_error", "content-encoding must be gzip, br or identity"));
      return undefined;
    }
    try {
      const bytes = await readRequestBody(req, maxRequestBytes, requestBytes);
      const plain = compression === undefined ? bytes : await compression.decompress(bytes, maxRequestBytes);
      try {
        return { bytes, json: JSON.parse(decodeUtf8Strict(plain)) };
      } catch {
        throw new AnthropicParamError(undefined, "the request body is not valid JSON (UTF-8)");
      }
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.ResourceExhausted && err.details.length === 0) {
        // Over server.maxRequestBytes: 413 (RESOURCE_EXHAUSTED would be a 429 an SDK retries).
        answerJson(res, 413, {}, anthropicErrorBody("invalid_request_error", err.rawMessage));
      } else {
        answerError(res, undefined, asConnectError(err));
      }
      return undefined;
    }
  }

  async function countTokens(
    route: UnaryLaneRoute,
    req: NodeRequest,
    res: NodeResponse,
    path: string,
    body: { bytes: Uint8Array; json: unknown },
  ): Promise<void> {
    let request: CompleteRequest;
    try {
      request = parseCountTokensRequest(body.json);
    } catch (err) {
      return answerError(res, undefined, asConnectError(err));
    }
    const call = startFastCall(route.method, "anthropic", path, req.headers, res, undefined, active);
    call.bodyDigest()?.update(body.bytes);
    let text: string;
    try {
      const response = (await route.invoke(call, create(ListModelsRequestSchema))).message as ListModelsResponse;
      const model = response.models.find((m) => m.alias === request.model);
      if (model === undefined) {
        throw new ConnectError(`model not found: ${request.model.slice(0, 64)}`, Code.NotFound);
      }
      const estimator = options.estimator ?? (sharedEstimator ??= createTokenEstimator());
      const tokens = await estimator.promptTokens(request);
      text = JSON.stringify({ input_tokens: forProvider(tokens, model.deployments[0]?.providerType ?? "") });
    } catch (err) {
      call.end();
      return answerError(res, call, asConnectError(err));
    }
    call.end();
    answerJson(res, 200, callHeaders(call), text);
  }

  async function serveStream(route: StreamLaneRoute, call: FastCall, request: CompleteRequest, res: NodeResponse): Promise<void> {
    let started = false;
    /** Commits the stream: 200 and the call's headers, with the first event or heartbeat. */
    const start = (): void => {
      if (started) return;
      started = true;
      res.writeHead(200, sseHeaders(callHeaders(call)));
    };
    let timer: NodeJS.Timeout | undefined;
    if (heartbeatMs > 0) {
      timer = setTimeout(function beat() {
        if (res.destroyed || res.writableEnded) return;
        start();
        (res as Writable).write(ssePing);
        timer!.refresh();
      }, heartbeatMs);
    }
    let error: ConnectError | undefined;
    let done = false;
    try {
      const response = await route.invoke(call, request);
      const encoder = new MessageStreamEncoder();
      for await (const message of response.message) {
        if (res.destroyed) break;
        const event = message as StreamCompleteResponse;
        if (event.event.case === "done") done = true;
        const text = encoder.encode(event);
        if (text === "") continue;
        start();
        timer?.refresh();
        if (!(res as Writable).write(text)) await drained(res, call.signal);
      }
      if (!done && !res.destroyed) throw new ConnectError("the stream ended without its last event", Code.Internal);
    } catch (err) {
      error = asConnectError(err);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      call.end();
    }
    if (res.destroyed) return;
    if (error === undefined) {
      start();
      res.end();
    } else if (!started) {
      answerError(res, call, error);
    } else {
      res.end(sseErrorEvent(error, requestIdOf(call)));
    }
  }
}

function asConnectError(err: unknown): ConnectError {
  // A refused field's error is bounded already (it names the field, cut to 64 characters).
  if (isAnthropicParamError(err)) return err;
  return boundError(
    err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
  );
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
