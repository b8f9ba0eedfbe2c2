import type * as http from "node:http";
import { concatBody, readBody } from "./read-body.js";
import type * as http2 from "node:http2";
import type { DescMethod, DescMethodServerStreaming } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
} from "@connectrpc/connect";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Serves a request, or returns false (untouched) so the general Connect adapter serves it. */
export type FastLane = (req: NodeRequest, res: NodeResponse) => boolean;

/**
 * Calls in progress on the fast lanes, aborted together when the server's drain deadline
 * passes: one listener on the shutdown signal instead of one per call.
 */
export interface ActiveCalls {
  add(controller: AbortController): void;
  delete(controller: AbortController): void;
  readonly shutdownSignal: AbortSignal;
}

export function createActiveCalls(shutdownSignal: AbortSignal): ActiveCalls {
  const active = new Set<AbortController>();
  shutdownSignal.addEventListener(
    "abort",
    () => {
      for (const controller of active) controller.abort(shutdownSignal.reason);
    },
    { once: true },
  );
  return {
    shutdownSignal,
    add(controller) {
      active.add(controller);
      if (shutdownSignal.aborted) controller.abort(shutdownSignal.reason);
    },
    delete(controller) {
      active.delete(controller);
    },
  };
}

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

/** Reads a whole request body, refusing more than `maxBytes` as connect does (RESOURCE_EXHAUSTED). */
export async function readRequestBody(req: NodeRequest, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(Number(declared), maxBytes);
  return concatBody(
    await readBody(req, (_chunks, size) => {
      if (size > maxBytes) throw tooLarge(size, maxBytes);
    }),
  );
}

function tooLarge(size: number, maxBytes: number): ConnectError {
  return new ConnectError(`message size ${size} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
}

/** Builds `next` for a chain of interceptors (first = outermost), once per route. */
export function chainInterceptors<T>(next: T, interceptors: readonly ((next: never) => unknown)[]): T {
  let chained = next;
  for (let i = interceptors.length - 1; i >= 0; i--) chained = interceptors[i]!(chained as never) as T;
  return chained;
}

/** Whether a Headers object holds anything (without copying it). */
export function hasEntries(headers: Headers): boolean {
  for (const _ of headers.keys()) return true;
  return false;
}

/** A compression header that leaves the lane able to read the body: absent or identity. */
export function isIdentityEncoding(value: string | string[] | undefined): boolean {
  return value === undefined || value === "identity";
}

/** A protocol's timeout header parser, as connect exports one per protocol. */
type TimeoutParser = (value: string | null, maxTimeoutMs: number) => { timeoutMs?: number; error?: ConnectError };

/**
 * A call's timeout from its header (`connect-timeout-ms`, `grpc-timeout`) with the
 * protocol's own connect parser: undefined when absent, null when malformed — the lane
 * then declines, and connect-node answers with the protocol's error.
 */
export function timeoutFromHeader(value: string | string[] | undefined, parse: TimeoutParser): number | undefined | null {
  if (value === undefined) return undefined;
  const timeout = parse(value as string, Number.MAX_SAFE_INTEGER);
  return timeout.error !== undefined ? null : timeout.timeoutMs;
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

/** A server-streaming RPC the fast lanes may serve, with the router's implementation. */
export interface ServerStreamRoute {
  readonly method: DescMethodServerStreaming;
  readonly impl: (request: never, context: HandlerContext) => AsyncIterable<unknown>;
}

/**
 * The implementation of a server-streaming route behind the interceptor chain, built once
 * per route: interceptors see a StreamRequest whose one message is the parsed input.
 */
export function createStreamInvoker(
  route: ServerStreamRoute,
  interceptors: readonly Interceptor[],
): (method: DescMethodServerStreaming, url: string, call: FastCall, input: unknown) => Promise<StreamResponse> {
  const { method } = route;
  const impl = route.impl as (message: unknown, context: HandlerContext) => AsyncIterable<unknown>;
  const next = async (req: StreamRequest): Promise<StreamResponse> => {
    const context = (req as StreamRequest & { context: HandlerContext }).context;
    let input: unknown;
    for await (const message of req.message) input = message;
    return {
      stream: true,
      service: method.parent,
      method,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      message: impl(input, context) as StreamResponse["message"],
    };
  };
  const invoke = chainInterceptors(next as (req: StreamRequest) => Promise<StreamResponse>, interceptors);
  return (routeMethod, url, call, input) =>
    invoke(interceptorRequest(routeMethod, url, call, true, single(input)));
}

async function* single<T>(value: T): AsyncGenerator<T> {
  yield value;
}
