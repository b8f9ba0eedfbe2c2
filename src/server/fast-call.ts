import { createHash, type Hash } from "node:crypto";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import type { ActiveCalls } from "./active-calls.js";
import { CallValues, callRequestHeaders } from "./call-request-headers.js";
import { h2ResetError } from "./h2-reset-error.js";
import { hasEntries } from "./lane-headers.js";
import { socketCertificate } from "../identity/mtls-socket.js";
import { type Peer, type PeerCertificate, peerKey } from "../identity/peer.js";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Serves a request, or returns false (untouched) so the general Connect adapter serves it. */
export type FastLane = (req: NodeRequest, res: NodeResponse) => boolean;

/** The lifetime of one fast-lane call: its signal, deadline and handler context. */
export interface FastCall {
  readonly signal: AbortSignal;
  readonly context: HandlerContext;
  /** Response headers the implementation or an interceptor set, if any (none: no Headers object was made). */
  responseHeaders(): Headers | undefined;
  /**
   * Response trailers set, if any. Undefined also when the trailer object was only read:
   * every response hands it to the interceptors, so it exists for most calls, empty.
   */
  responseTrailers(): Headers | undefined;
  /**
   * What the lane feeds the raw request body to, as it reads it: a SHA-256 only for a signed
   * request (an `x-sluice-signature` header; signed-request.ts), undefined for every other call.
   */
  bodyDigest(): Hash | undefined;
  /** Releases the timer and listeners; the call's signal is left as it is (not aborted). */
  end(): void;
}

/**
 * Starts a call: one AbortController, aborted by the caller's deadline (DEADLINE_EXCEEDED),
 * the caller going away before the response finished (CANCELLED) or the drain deadline
 * (UNAVAILABLE). Unlike the general adapter it is not aborted after a call that succeeded,
 * which would build a DOMException per call for nothing.
 */
export function startFastCall(
  method: DescMethod,
  protocolName: string,
  path: string,
  headers: http.IncomingHttpHeaders,
  response: CallResponse,
  timeoutMs: number | undefined,
  active: ActiveCalls,
): FastCall {
  return new FastCallContext(method, protocolName, path, headers, response as TrackedResponse, timeoutMs, active);
}

/** What a call answers on: a response (HTTP/1.1, HTTP/2 compatibility API) or a raw HTTP/2 stream. */
export type CallResponse = NodeResponse | http2.ServerHttp2Stream;

/** Where a response keeps its call, for the one shared "close" listener. */
const callOfResponse = Symbol("sluice.fastCall");
type TrackedResponse = CallResponse & { [callOfResponse]?: FastCallContext };

/**
 * Removed by end(), which runs before the response is ended: any close before that is the
 * caller going away (RST_STREAM, a closed connection). Not `writableFinished`: an HTTP/2
 * compat response reports true there even after a reset. One function for every call
 * (the emitter is `this`), so a call allocates no listener closure.
 */
function onResponseClose(this: TrackedResponse): void {
  const call = this[callOfResponse];
  if (call === undefined) return;
  // HTTP/2 says how the caller left: the reset code of the raw stream or of the compat response's stream.
  const rstCode = "rstCode" in this ? this.rstCode : "stream" in this ? this.stream.rstCode : undefined;
  call.controller.abort(h2ResetError(rstCode) ?? new ConnectError("the operation was cancelled", Code.Canceled));
}

function onDeadline(call: FastCallContext): void {
  call.controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
}

/**
 * A call and its handler context in one object, as connect builds a context but lazy:
 * request headers become a Headers object only when something reads them (auth,
 * tracing), response headers and trailers only when something sets them. A class, not an
 * object literal: accessors on a literal are defined one by one on every call (a slow,
 * large, dictionary-mode object), on a prototype they cost nothing per call.
 */
class FastCallContext implements HandlerContext, FastCall, Peer {
  readonly controller = new AbortController();
  readonly signal: AbortSignal;
  readonly service: DescMethod["parent"];
  readonly requestMethod = "POST";
  /** Absolute, as connect-node gives it ("the URL received by the server"). */
  readonly url: string;
  /** Filled from node's headers when first read (call-request-headers.ts). */
  readonly requestHeader: Headers;
  readonly values: ContextValues = new CallValues();
  private readonly deadline: number | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private responseHeaderCache: Headers | undefined = undefined;
  private responseTrailerCache: Headers | undefined = undefined;
  private readonly digest: Hash | undefined;
  private digestHex: string | undefined = undefined;

  constructor(
    readonly method: DescMethod,
    readonly protocolName: string,
    path: string,
    headers: http.IncomingHttpHeaders,
    private readonly res: TrackedResponse,
    timeoutMs: number | undefined,
    private readonly active: ActiveCalls,
  ) {
    this.signal = this.controller.signal;
    this.service = method.parent;
    this.url = absoluteUrl(path, headers, res);
    this.requestHeader = callRequestHeaders(headers);
    this.digest = headers["x-sluice-signature"] === undefined ? undefined : createHash("sha256");
    // The call itself answers for its peer: nothing is read unless a step asks.
    this.values.set(peerKey, this);
    active.add(this.controller);
    if (timeoutMs === undefined) {
      this.deadline = undefined;
      this.timer = undefined;
    } else {
      this.deadline = Date.now() + timeoutMs;
      // As connect does: a budget already spent aborts before the call starts.
      if (timeoutMs <= 0) {
        this.timer = undefined;
        onDeadline(this);
      } else {
        this.timer = setTimeout(onDeadline, timeoutMs, this);
      }
    }
    res[callOfResponse] = this;
    res.once("close", onResponseClose);
  }

  get context(): HandlerContext {
    return this;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get responseHeader(): Headers {
    return (this.responseHeaderCache ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailerCache ??= new Headers());
  }

  abort(): void {
    // Nothing to release: the call's controller is dropped when the call ends.
  }

  responseHeaders(): Headers | undefined {
    return this.responseHeaderCache;
  }

  responseTrailers(): Headers | undefined {
    const trailers = this.responseTrailerCache;
    return trailers !== undefined && hasEntries(trailers) ? trailers : undefined;
  }

  remoteAddress(): string | undefined {
    const res = this.res;
    // A raw HTTP/2 stream (gRPC lane) reaches its socket through its session; a response directly.
    const socket = "respond" in res ? res.session?.socket : res.socket;
    return socket?.remoteAddress;
  }

  certificate(): PeerCertificate | "unverified" | undefined {
    const res = this.res;
    // Read once per socket (mtls-socket.ts), and only when the auth step asks (mTLS configured).
    return socketCertificate("respond" in res ? res.session?.socket : res.socket);
  }

  bodyDigest(): Hash | undefined {
    return this.digest;
  }

  bodySha256(): string | undefined {
    // The lane has read the whole body before the interceptors run.
    if (this.digest === undefined) return undefined;
    return (this.digestHex ??= this.digest.digest("hex"));
  }

  end(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.active.delete(this.controller);
    this.res.off("close", onResponseClose);
    this.res[callOfResponse] = undefined;
  }
}

/**
 * The request's URL as connect-node gives it: the scheme from the socket (TLS or not), the
 * authority from `:authority` (HTTP/2) or Host, then the path — concatenated, where
 * connect-node parses it with `new URL`: the same string for every authority a client
 * sends (host names arrive lower-case), without a URL parse per call. Without an
 * authority (HTTP/1.0 with no Host) connect-node fails the call; a lane reports the path.
 */
function absoluteUrl(path: string, headers: http.IncomingHttpHeaders, res: CallResponse): string {
  const authority = (headers[":authority"] ?? headers.host) as string | undefined;
  if (authority === undefined) return path;
  const socket = "session" in res ? res.session?.socket : res.socket;
  const encrypted = socket !== null && socket !== undefined && "encrypted" in socket && socket.encrypted === true;
  return `${encrypted ? "https" : "http"}://${authority}${path}`;
}

/**
 * The request interceptors see, carrying the handler context for the implementation. Every
 * field is an own data property, as on connect-node's plain request object, so a spread
 * copy (`{ ...req, message }`) is a complete request too (lane-cases.test.ts, case 4c).
 */
export function interceptorRequest<S extends boolean>(
  method: DescMethod,
  call: FastCall,
  stream: S,
  message: unknown,
): (S extends true ? StreamRequest : UnaryRequest) & { readonly context: HandlerContext } {
  return new FastInterceptorRequest(stream, method, call.context, message) as never;
}

class FastInterceptorRequest {
  readonly service: DescMethod["parent"];
  readonly requestMethod = "POST";
  readonly url: string;
  readonly signal: AbortSignal;
  readonly header: Headers;
  readonly contextValues: ContextValues;

  constructor(
    readonly stream: boolean,
    readonly method: DescMethod,
    readonly context: HandlerContext,
    readonly message: unknown,
  ) {
    this.service = method.parent;
    this.url = context.url;
    this.signal = context.signal;
    this.header = context.requestHeader;
    this.contextValues = context.values;
  }
}

/**
 * The context the implementation runs with. The call's own, when the interceptors passed
 * the lane's request on; when one passed on another (a copy with other headers, values or
 * signal), the call's context with that request's view, as connect's `mergeRequest` does —
 * so an interceptor that rewrites a header is heard by the implementation on every lane.
 */
export function contextOf(req: UnaryRequest | StreamRequest): HandlerContext {
  if (req instanceof FastInterceptorRequest) return req.context;
  const context = (req as { readonly context?: HandlerContext }).context;
  if (context === undefined) {
    throw new ConnectError(
      "an interceptor passed on a request without its call's context: pass `req` or a copy of it",
      Code.Internal,
    );
  }
  return new RequestViewContext(context, req);
}

class RequestViewContext implements HandlerContext {
  readonly method: DescMethod;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly url: string;
  readonly timeoutMs: () => number | undefined;
  readonly service: DescMethod["parent"];
  readonly signal: AbortSignal;
  readonly requestHeader: Headers;
  readonly values: ContextValues;

  constructor(
    private readonly call: HandlerContext,
    req: UnaryRequest | StreamRequest,
  ) {
    this.method = call.method;
    this.protocolName = call.protocolName;
    this.requestMethod = call.requestMethod;
    this.url = call.url;
    this.timeoutMs = () => call.timeoutMs();
    this.service = req.service;
    this.signal = req.signal;
    this.requestHeader = req.header;
    this.values = req.contextValues;
  }

  get responseHeader(): Headers {
    return this.call.responseHeader;
  }

  get responseTrailer(): Headers {
    return this.call.responseTrailer;
  }
}

/**
 * The headers a lane answers with: those the implementation or an interceptor set, then the
 * lane's content type (which wins), added to `into` (the gRPC lane's `:status`).
 */
export function outgoingHeaders(
  call: FastCall,
  contentType: string,
  into: http2.OutgoingHttpHeaders = {},
): http2.OutgoingHttpHeaders {
  call.responseHeaders()?.forEach((value, key) => {
    into[key] = value;
  });
  into["content-type"] = contentType;
  return into;
}

/**
 * A lane's last resort when answering a call failed after all (a bug: an error its own
 * error writer cannot encode, a write to a broken response): the caller sees its
 * connection or stream reset, rather than the process dying of an unhandled rejection.
 */
export function abandonCall(res: CallResponse): void {
  if (!res.destroyed) res.destroy();
}
