import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import type { ActiveCalls } from "./active-calls.js";
import { hasEntries } from "./lane-headers.js";

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
  url: string,
  headers: http.IncomingHttpHeaders,
  response: CallResponse,
  timeoutMs: number | undefined,
  active: ActiveCalls,
): FastCall {
  return new FastCallContext(method, protocolName, url, headers, response as TrackedResponse, timeoutMs, active);
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
  this[callOfResponse]?.controller.abort(new ConnectError("the operation was cancelled", Code.Canceled));
}

function onDeadline(call: FastCallContext): void {
  call.controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
}

/**
 * A call and its handler context in one object, as connect builds a context but lazy:
 * request headers become a Headers object only when something reads them (auth,
 * tracing), response headers and trailers only when something sets them. A class, not an
 * object literal: accessors on a literal are defined one by one on every call (a slow,
 * dictionary-mode object of ~600 bytes), on a prototype they cost nothing per call.
 */
class FastCallContext implements HandlerContext, FastCall {
  readonly controller = new AbortController();
  readonly signal: AbortSignal;
  readonly service: DescMethod["parent"];
  readonly requestMethod = "POST";
  private readonly deadline: number | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private requestHeaderCache: Headers | undefined = undefined;
  private responseHeaderCache: Headers | undefined = undefined;
  private responseTrailerCache: Headers | undefined = undefined;
  private valuesCache: ContextValues | undefined = undefined;

  constructor(
    readonly method: DescMethod,
    readonly protocolName: string,
    readonly url: string,
    private readonly headers: http.IncomingHttpHeaders,
    private readonly res: TrackedResponse,
    timeoutMs: number | undefined,
    private readonly active: ActiveCalls,
  ) {
    this.signal = this.controller.signal;
    this.service = method.parent;
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

  get requestHeader(): Headers {
    return (this.requestHeaderCache ??= nodeHeadersToHeaders(this.headers));
  }

  get responseHeader(): Headers {
    return (this.responseHeaderCache ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailerCache ??= new Headers());
  }

  get values(): ContextValues {
    return (this.valuesCache ??= createContextValues());
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

  end(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.active.delete(this.controller);
    this.res.off("close", onResponseClose);
    this.res[callOfResponse] = undefined;
  }
}

function nodeHeadersToHeaders(incoming: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const key in incoming) {
    if (key.charCodeAt(0) === 58 /* ':' HTTP/2 pseudo-header */) continue;
    const value = incoming[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(key, item);
    else headers.set(key, value);
  }
  return headers;
}


/**
 * The request interceptors see, carrying the handler context for the implementation. Its
 * headers and context values are lazy getters (on the prototype: nothing defined per
 * call); never spread this object, which would call them (a Headers object per call).
 */
export function interceptorRequest<S extends boolean>(
  method: DescMethod,
  url: string,
  call: FastCall,
  stream: S,
  message: unknown,
): (S extends true ? StreamRequest : UnaryRequest) & { readonly context: HandlerContext } {
  return new FastInterceptorRequest(stream, method, url, call.signal, message, call.context) as never;
}

class FastInterceptorRequest {
  readonly service: DescMethod["parent"];
  readonly requestMethod = "POST";

  constructor(
    readonly stream: boolean,
    readonly method: DescMethod,
    readonly url: string,
    readonly signal: AbortSignal,
    readonly message: unknown,
    readonly context: HandlerContext,
  ) {
    this.service = method.parent;
  }

  get header(): Headers {
    return this.context.requestHeader;
  }

  get contextValues(): ContextValues {
    return this.context.values;
  }
}

