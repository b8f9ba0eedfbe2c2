import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { DescMethod, DescMethodServerStreaming } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
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
  /** Response trailers set, if any. */
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
  req: NodeRequest,
  res: NodeResponse,
  timeoutMs: number | undefined,
  active: ActiveCalls,
): FastCall {
  const controller = new AbortController();
  active.add(controller);
  let timer: NodeJS.Timeout | undefined;
  let deadline: number | undefined;
  if (timeoutMs !== undefined) {
    deadline = Date.now() + timeoutMs;
    const expire = (): void => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    // As connect does: a budget already spent aborts before the call starts.
    if (timeoutMs <= 0) expire();
    else timer = setTimeout(expire, timeoutMs);
  }
  // Removed by end(), which runs before the response is ended: any close before that is
  // the caller going away (RST_STREAM, a closed connection). Not `writableFinished`: an
  // HTTP/2 compat response reports true there even after a reset.
  const onClose = (): void => {
    controller.abort(new ConnectError("the operation was cancelled", Code.Canceled));
  };
  res.once("close", onClose);
  const lazy = createContext(method, protocolName, req, controller.signal, deadline);
  return {
    signal: controller.signal,
    context: lazy.context,
    responseHeaders: lazy.responseHeaders,
    responseTrailers: lazy.responseTrailers,
    end() {
      if (timer !== undefined) clearTimeout(timer);
      active.delete(controller);
      res.off("close", onClose);
    },
  };
}

/**
 * A handler context as connect builds one, but lazy: request headers become a Headers
 * object only when something reads them (auth, tracing), response headers and trailers
 * only when something sets them.
 */
function createContext(
  method: DescMethod,
  protocolName: string,
  req: NodeRequest,
  signal: AbortSignal,
  deadline: number | undefined,
): { context: HandlerContext; responseHeaders(): Headers | undefined; responseTrailers(): Headers | undefined } {
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  let values: ReturnType<typeof createContextValues> | undefined;
  const context = {
    method,
    service: method.parent,
    requestMethod: "POST",
    protocolName,
    url: req.url ?? "",
    signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get requestHeader() {
      return (requestHeader ??= nodeHeadersToHeaders(req.headers));
    },
    get responseHeader() {
      return (responseHeader ??= new Headers());
    },
    get responseTrailer() {
      return (responseTrailer ??= new Headers());
    },
    get values() {
      return (values ??= createContextValues());
    },
    abort() {
      // Nothing to release: the call's controller is dropped when the call ends.
    },
  } as HandlerContext;
  return { context, responseHeaders: () => responseHeader, responseTrailers: () => responseTrailer };
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
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge(size, maxBytes);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
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
 * headers and context values stay lazy getters: never spread this object, which would
 * call them (building a Headers object per call).
 */
export function interceptorRequest<S extends boolean>(
  method: DescMethod,
  url: string,
  call: FastCall,
  stream: S,
  message: unknown,
): (S extends true ? StreamRequest : UnaryRequest) & { readonly context: HandlerContext } {
  const { context } = call;
  return {
    stream,
    service: method.parent,
    method,
    requestMethod: "POST",
    url,
    signal: call.signal,
    get header() {
      return context.requestHeader;
    },
    get contextValues() {
      return context.values;
    },
    message,
    context,
  } as never;
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
