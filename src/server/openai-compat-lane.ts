import type { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
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
import { boundError } from "../errors/bounded-error.js";
import { decodeUtf8Strict } from "../wire/strict-utf8.js";
import type { ActiveCalls } from "./active-calls.js";
import { abandonCall, startFastCall, type FastCall, type FastLane, type NodeRequest, type NodeResponse } from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import type { LaneRoutes, StreamLaneRoute, UnaryLaneRoute } from "./lane-routes.js";
import { drained } from "./read-envelope.js";
import { readRequestBody } from "./read-body.js";
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

const jsonContentType = /^application\/json(?:;\s*charset=utf-?8)?$/i;

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
  const { routes, active, maxRequestBytes, requestBytes, heartbeatMs } = options;
  const completeRoute = routes.get(rpcPathOf(ChatService.method.complete)) as UnaryLaneRoute | undefined;
  const streamRoute = routes.get(rpcPathOf(ChatService.method.streamComplete)) as StreamLaneRoute | undefined;
  const modelsRoute = routes.get(rpcPathOf(ModelService.method.listModels)) as UnaryLaneRoute | undefined;

  return function openAiCompatLane(req, res) {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    if (path === chatCompletionsPath) {
      if (completeRoute === undefined || streamRoute === undefined) return false;
      if (req.method !== "POST") {
        methodNotAllowed(res, "POST");
        return true;
      }
      void serveChat(completeRoute, streamRoute, req, res, path);
      return true;
    }
    if (path === modelsPath) {
      if (modelsRoute === undefined) return false;
      if (req.method !== "GET") {
        methodNotAllowed(res, "GET");
        return true;
      }
      void serveModels(modelsRoute, req, res, path);
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
      const contentType = req.headers["content-type"];
      if (contentType === undefined || !jsonContentType.test(contentType)) {
        return answer(
          res,
          415,
          {},
          errorBody("content-type must be application/json", errorType(415), null, "unsupported_media_type"),
        );
      }
      const compression = requestCompression(req.headers["content-encoding"]);
      if (compression === null) {
        return answer(
          res,
          415,
          {},
          errorBody("content-encoding must be gzip, br or identity", errorType(415), null, "unsupported_media_type"),
        );
      }
      let bytes: Uint8Array;
      let parsed: ReturnType<typeof parseChatRequest>;
      try {
        bytes = await readRequestBody(req, maxRequestBytes, requestBytes);
        const plain = compression === undefined ? bytes : await compression.decompress(bytes, maxRequestBytes);
        let body: unknown;
        try {
          body = JSON.parse(decodeUtf8Strict(plain));
        } catch {
          throw new OpenAiParamError(undefined, "the request body is not valid JSON (UTF-8)", "invalid_json");
        }
        parsed = parseChatRequest(body);
      } catch (err) {
        return answerError(res, undefined, bodyError(err));
      }
      const route = parsed.stream ? streaming : unary;
      const call = startFastCall(route.method, "openai", path, req.headers, res, undefined, active);
      // The raw body, for a signed request's digest (signed-request.ts): read before the call existed.
      call.bodyDigest()?.update(bytes);
      if (parsed.stream) return await serveStream(streaming, call, parsed.request, parsed.includeUsage, res);
      let body: string;
      try {
        const response = await unary.invoke(call, parsed.request);
        body = completionJson(response.message as CompleteResponse);
      } catch (err) {
        call.end();
        return answerError(res, call, asConnectError(err));
      }
      call.end();
      answer(res, 200, collectHeaders(call), body);
    } catch {
      abandonCall(res);
    }
  }

  async function serveStream(
    route: StreamLaneRoute,
    call: FastCall,
    request: Parameters<StreamLaneRoute["invoke"]>[1],
    includeUsage: boolean,
    res: NodeResponse,
  ): Promise<void> {
    let started = false;
    /** Commits the stream: 200 and the call's headers, with the first chunk or heartbeat. */
    const start = (): void => {
      if (started) return;
      started = true;
      const headers = collectHeaders(call);
      headers["content-type"] = "text/event-stream; charset=utf-8";
      headers["cache-control"] = "no-cache";
      // nginx and its kin buffer responses unless told not to: a stream must not wait in a proxy.
      headers["x-accel-buffering"] = "no";
      res.writeHead(200, headers);
    };
    let timer: NodeJS.Timeout | undefined;
    if (heartbeatMs > 0) {
      timer = setTimeout(function beat() {
        if (res.destroyed || res.writableEnded) return;
        start();
        (res as Writable).write(sseHeartbeat);
        timer!.refresh();
      }, heartbeatMs);
    }
    let error: ConnectError | undefined;
    try {
      const response = await route.invoke(call, request);
      const encoder = new ChatChunkEncoder(includeUsage);
      for await (const message of response.message) {
        if (res.destroyed) break;
        const text = encoder.encode(message as StreamCompleteResponse);
        if (text === "") continue;
        start();
        timer?.refresh();
        if (!(res as Writable).write(text)) await drained(res, call.signal);
      }
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
      res.end(sseErrorEvent(error));
    }
  }

  async function serveModels(route: UnaryLaneRoute, req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
    try {
      const call = startFastCall(route.method, "openai", path, req.headers, res, undefined, active);
      let body: string;
      try {
        const response = await route.invoke(call, create(ListModelsRequestSchema));
        body = modelListJson(response.message as ListModelsResponse);
      } catch (err) {
        call.end();
        return answerError(res, call, asConnectError(err));
      }
      call.end();
      answer(res, 200, collectHeaders(call), body);
    } catch {
      abandonCall(res);
    }
  }
}

function rpcPathOf(method: { readonly parent: { readonly typeName: string }; readonly name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function asConnectError(err: unknown): ConnectError {
  // A refused field's error is bounded already (it names the field, cut to 64 characters).
  if (isParamError(err)) return err;
  return boundError(
    err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
  );
}

/** A body over `server.maxRequestBytes` is 413 (connect says RESOURCE_EXHAUSTED, which an SDK would retry). */
function bodyError(err: unknown): ConnectError {
  if (err instanceof ConnectError && err.code === Code.ResourceExhausted && err.details.length === 0) {
    return new OpenAiParamError(undefined, err.rawMessage, "request_too_large");
  }
  return asConnectError(err);
}

/** The headers the chain and the service set (request id, `x-ratelimit-*`, `sluice-*`), trailers included. */
function collectHeaders(call: FastCall | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (call === undefined) return out;
  const copy = (value: string, key: string): void => {
    out[key] = value;
  };
  call.responseHeaders()?.forEach(copy);
  call.responseTrailers()?.forEach(copy);
  return out;
}

function answerError(res: NodeResponse, call: FastCall | undefined, error: ConnectError): void {
  if (res.destroyed) return;
  const { status, headers, body } = toOpenAiError(error);
  const body413 = isParamError(error) && error.openaiCode === "request_too_large";
  answer(res, body413 ? 413 : status, { ...collectHeaders(call), ...headers }, body);
}

function answer(res: NodeResponse, status: number, headers: Record<string, string>, body: string): void {
  if (res.destroyed) return;
  headers["content-type"] = "application/json";
  headers["content-length"] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(body);
}

function methodNotAllowed(res: NodeResponse, allow: string): void {
  answer(res, 405, { allow }, errorBody(`method not allowed: use ${allow}`, errorType(405), null, "method_not_allowed"));
}
