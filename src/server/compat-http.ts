import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { boundError } from "../errors/bounded-error.js";
import { decodeUtf8Strict } from "../wire/strict-utf8.js";
import type { ActiveCalls } from "./active-calls.js";
import { startFastCall, type FastCall, type NodeRequest, type NodeResponse } from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import type { StreamLaneRoute, UnaryLaneRoute } from "./lane-routes.js";
import { drained } from "./read-envelope.js";
import { readRequestBody } from "./read-body.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

/**
 * What the HTTP compatibility lanes (OpenAI's and Anthropic's) share: reading a JSON body,
 * the method check, starting a call, a unary JSON answer, a server-sent events stream with
 * its heartbeats, error answers. Each lane gives its wire format (CompatFormat): how its
 * errors look, its call headers, its heartbeat.
 */

/** `application/json`, optionally with a UTF-8 charset. */
export const jsonContentType = /^application\/json(?:;\s*charset=utf-?8)?$/i;

/** The route table's key for an RPC: `/package.Service/Method`. */
export function rpcPathOf(method: { readonly parent: { readonly typeName: string }; readonly name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The path of a request URL, without its query. */
export function pathOf(url: string | undefined): string {
  const value = url ?? "";
  const query = value.indexOf("?");
  return query === -1 ? value : value.slice(0, query);
}

/** The headers the chain and the service set (request id, `x-ratelimit-*`, `sluice-*`), trailers included. */
export function collectHeaders(call: FastCall | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (call === undefined) return out;
  const copy = (value: string, key: string): void => {
    out[key] = value;
  };
  call.responseHeaders()?.forEach(copy);
  call.responseTrailers()?.forEach(copy);
  return out;
}

/** A JSON answer with its length. Nothing when the caller is gone. */
export function answerJson(res: NodeResponse, status: number, headers: Record<string, string>, body: string): void {
  if (res.destroyed) return;
  headers["content-type"] = "application/json";
  headers["content-length"] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(body);
}

/** Adds the head of a server-sent events response to `headers`. */
export function sseHeaders(headers: Record<string, string>): Record<string, string> {
  headers["content-type"] = "text/event-stream; charset=utf-8";
  headers["cache-control"] = "no-cache";
  // nginx and its kin buffer responses unless told not to: a stream must not wait in a proxy.
  headers["x-accel-buffering"] = "no";
  return headers;
}

/** What a compatibility lane's wire format gives the shared helpers. */
export interface CompatFormat {
  /** The protocol the calls are logged and counted under (`openai`, `anthropic`). */
  readonly protocol: string;
  /** Whether `err` is the format's refused-field error (a ConnectError, bounded already). */
  readonly isParamError: (err: unknown) => boolean;
  /** The format's error for a body that is not JSON (UTF-8). */
  readonly invalidJson: () => ConnectError;
  /** An error the lane answers before any call: 405, 413 or 415, with `message`. */
  readonly answerRefusal: (res: NodeResponse, status: 405 | 413 | 415, headers: Record<string, string>, message: string) => void;
  /** A ConnectError answered in the format's shape, with the call's headers (a call's error, or one before it). */
  readonly answerError: (res: NodeResponse, call: FastCall | undefined, error: ConnectError) => void;
  /** The headers of a successful answer or of a stream's head. */
  readonly callHeaders: (call: FastCall) => Record<string, string>;
  /** The comment or event written after `heartbeatMs` without a write. */
  readonly heartbeat: string;
  /** The SSE event that ends a stream which failed after its head went out. */
  readonly sseErrorEvent: (error: ConnectError, call: FastCall) => string;
}

/** Any error as a bounded ConnectError; the format's refused-field error is bounded already (it names the field, cut). */
export function asConnectError(format: CompatFormat, err: unknown): ConnectError {
  if (format.isParamError(err)) return err as ConnectError;
  return boundError(
    err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
  );
}

/** Whether the method is `allow`; if not, answers 405 with `allow`. */
export function methodAllowed(format: CompatFormat, req: NodeRequest, res: NodeResponse, allow: string): boolean {
  if (req.method === allow) return true;
  format.answerRefusal(res, 405, { allow }, `method not allowed: use ${allow}`);
  return false;
}

export interface CompatBodyLimits {
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
}

/** A request body: its raw bytes (for a signed request's digest) and its JSON. */
export interface JsonBody {
  readonly bytes: Uint8Array;
  readonly json: unknown;
}

/**
 * The body as JSON, or undefined when an error was answered: 415 for a content-type other
 * than JSON or an unknown content-encoding, 413 over server.maxRequestBytes (connect says
 * RESOURCE_EXHAUSTED, a 429 an SDK would retry), the format's error for a body that is not
 * JSON.
 */
export async function readJsonBody(
  format: CompatFormat,
  limits: CompatBodyLimits,
  req: NodeRequest,
  res: NodeResponse,
): Promise<JsonBody | undefined> {
  const contentType = req.headers["content-type"];
  if (contentType === undefined || !jsonContentType.test(contentType)) {
    format.answerRefusal(res, 415, {}, "content-type must be application/json");
    return undefined;
  }
  const compression = requestCompression(req.headers["content-encoding"]);
  if (compression === null) {
    format.answerRefusal(res, 415, {}, "content-encoding must be gzip, br or identity");
    return undefined;
  }
  try {
    const { maxRequestBytes, requestBytes } = limits;
    const bytes = await readRequestBody(req, maxRequestBytes, requestBytes);
    const plain = compression === undefined ? bytes : await compression.decompress(bytes, maxRequestBytes);
    try {
      return { bytes, json: JSON.parse(decodeUtf8Strict(plain)) };
    } catch {
      throw format.invalidJson();
    }
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.ResourceExhausted && err.details.length === 0) {
      format.answerRefusal(res, 413, {}, err.rawMessage);
    } else {
      format.answerError(res, undefined, asConnectError(format, err));
    }
    return undefined;
  }
}

/** Starts the call of a route for a body read before it (its bytes go to a signed request's digest). */
export function startCompatCall(
  format: CompatFormat,
  route: UnaryLaneRoute | StreamLaneRoute,
  req: NodeRequest,
  res: NodeResponse,
  path: string,
  active: ActiveCalls,
  body?: JsonBody,
): FastCall {
  const call = startFastCall(route.method, format.protocol, path, req.headers, res, undefined, active);
  // The raw body, for a signed request's digest (signed-request.ts): read before the call existed.
  if (body !== undefined) call.bodyDigest()?.update(body.bytes);
  return call;
}

/** Ends the call with `run`'s JSON as a 200, or its error in the format's shape. */
export async function answerUnary(
  format: CompatFormat,
  call: FastCall,
  res: NodeResponse,
  run: () => Promise<string>,
): Promise<void> {
  let text: string;
  try {
    text = await run();
  } catch (err) {
    call.end();
    return format.answerError(res, call, asConnectError(format, err));
  }
  call.end();
  answerJson(res, 200, format.callHeaders(call), text);
}

export interface SseStreamOptions {
  readonly format: CompatFormat;
  readonly route: StreamLaneRoute;
  readonly call: FastCall;
  readonly request: Parameters<StreamLaneRoute["invoke"]>[1];
  readonly res: NodeResponse;
  /** `server.sse.heartbeatMs`: the format's heartbeat after this long without a write; 0: none. */
  readonly heartbeatMs: number;
  /** A stream message as SSE text; "" writes nothing. */
  readonly encode: (message: unknown) => string;
  /** After the last message, when the caller is still there: throws when the stream is incomplete. */
  readonly ended?: () => void;
}

/**
 * Runs a streaming call as server-sent events. The head (200, the call's headers) goes out
 * with the first event, or with the first heartbeat when the model is slow to start: an
 * error before that is an ordinary HTTP error an SDK can retry; after it, the format's SSE
 * error event ends the stream.
 */
export async function serveSseStream(options: SseStreamOptions): Promise<void> {
  const { format, route, call, request, res, heartbeatMs, encode } = options;
  let started = false;
  /** Commits the stream: 200 and the call's headers, with the first event or heartbeat. */
  const start = (): void => {
    if (started) return;
    started = true;
    res.writeHead(200, sseHeaders(format.callHeaders(call)));
  };
  let timer: NodeJS.Timeout | undefined;
  if (heartbeatMs > 0) {
    timer = setTimeout(function beat() {
      if (res.destroyed || res.writableEnded) return;
      start();
      (res as Writable).write(format.heartbeat);
      timer!.refresh();
    }, heartbeatMs);
  }
  let error: ConnectError | undefined;
  try {
    const response = await route.invoke(call, request);
    for await (const message of response.message) {
      if (res.destroyed) break;
      const text = encode(message);
      if (text === "") continue;
      start();
      timer?.refresh();
      if (!(res as Writable).write(text)) await drained(res, call.signal);
    }
    if (!res.destroyed) options.ended?.();
  } catch (err) {
    error = asConnectError(format, err);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    call.end();
  }
  if (res.destroyed) return;
  if (error === undefined) {
    start();
    res.end();
  } else if (!started) {
    format.answerError(res, call, error);
  } else {
    res.end(format.sseErrorEvent(error, call));
  }
}
