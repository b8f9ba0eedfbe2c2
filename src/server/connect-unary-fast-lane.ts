import type * as http from "node:http";
import type * as http2 from "node:http2";
import {
  fromJsonString,
  toJsonString,
  type DescMessage,
  type DescMethodUnary,
  type JsonReadOptions,
  type JsonWriteOptions,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes, parseTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";

/** A unary RPC the fast lane may serve: its descriptor and the same implementation the router has. */
export interface UnaryRoute {
  readonly method: DescMethodUnary;
  readonly impl: (request: never, context: HandlerContext) => unknown;
}

export interface ConnectUnaryFastLaneOptions {
  readonly routes: readonly UnaryRoute[];
  /** The same interceptor chain the router applies, outermost first. */
  readonly interceptors: readonly Interceptor[];
  readonly maxRequestBytes: number;
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  /** Aborts every call in progress (graceful drain's deadline). */
  readonly shutdownSignal: AbortSignal;
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Serves a request, or returns false (untouched) so the general Connect adapter serves it. */
export type FastLane = (req: NodeRequest, res: NodeResponse) => boolean;

interface PreparedRoute {
  readonly method: DescMethodUnary;
  readonly input: DescMessage;
  readonly output: DescMessage;
  /** The implementation wrapped in the interceptor chain, built once. */
  readonly invoke: (req: UnaryRequest) => Promise<UnaryResponse>;
}

const jsonContentType = /^application\/json(?:;\s*charset=utf-?8)?$/i;
const textDecoder = new TextDecoder();

/**
 * The Connect protocol's unary JSON call — `POST` with `content-type: application/json`,
 * what curl and most HTTP clients send — served without the general adapter's per-call
 * machinery (a universal request/response pair, Headers objects, async-iterable pipelines
 * and two linked AbortControllers that abort, building a DOMException, after every call:
 * together ~55% of a request's CPU in profiles, DESIGN §9).
 *
 * It speaks exactly what connect-node would answer: same JSON options, same error body
 * (`errorToJsonBytes`), same HTTP status mapping, same timeout parsing, and runs the same
 * implementations behind the same interceptors. Anything it does not handle — another
 * content type, compression, GET, an unknown path, a malformed timeout header — is left
 * to connect-node (it returns false before touching the request).
 * Tests: the integration suites run every Connect JSON unary call through this lane;
 * connect-unary-fast-lane.test.ts compares it byte for byte with connect-node.
 */
export function createConnectUnaryFastLane(options: ConnectUnaryFastLaneOptions): FastLane {
  const { maxRequestBytes, jsonOptions, shutdownSignal } = options;
  const routes = new Map<string, PreparedRoute>();
  for (const route of options.routes) {
    const { method } = route;
    const next = async (req: UnaryRequest): Promise<UnaryResponse> => {
      const context = (req as FastUnaryRequest).context;
      const message = await (route.impl as (m: unknown, c: HandlerContext) => unknown)(req.message, context);
      return {
        stream: false,
        service: method.parent,
        method,
        header: context.responseHeader,
        trailer: context.responseTrailer,
        message: message as UnaryResponse["message"],
      };
    };
    let invoke = next as (req: UnaryRequest) => Promise<UnaryResponse>;
    for (let i = options.interceptors.length - 1; i >= 0; i--) {
      invoke = options.interceptors[i]!(invoke as never) as typeof invoke;
    }
    routes.set(`/${method.parent.typeName}/${method.name}`, { method, input: method.input, output: method.output, invoke });
  }

  // One listener for all calls instead of one per call: calls in progress sit in this set.
  const active = new Set<AbortController>();
  shutdownSignal.addEventListener(
    "abort",
    () => {
      for (const controller of active) controller.abort(shutdownSignal.reason);
    },
    { once: true },
  );

  return function fastLane(req, res) {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (route === undefined) return false;
    const headers = req.headers;
    const contentType = headers["content-type"];
    if (contentType === undefined || !jsonContentType.test(contentType)) return false;
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return false;
    const timeoutHeader = headers["connect-timeout-ms"];
    let timeoutMs: number | undefined;
    if (timeoutHeader !== undefined) {
      const timeout = parseTimeout(timeoutHeader as string, Number.MAX_SAFE_INTEGER);
      if (timeout.error !== undefined) return false;
      timeoutMs = timeout.timeoutMs;
    }
    void serve(route, req, res, timeoutMs);
    return true;
  };

  async function serve(route: PreparedRoute, req: NodeRequest, res: NodeResponse, timeoutMs: number | undefined) {
    const controller = new AbortController();
    active.add(controller);
    if (shutdownSignal.aborted) controller.abort(shutdownSignal.reason);
    let timer: NodeJS.Timeout | undefined;
    let deadline: number | undefined;
    if (timeoutMs !== undefined) {
      deadline = Date.now() + timeoutMs;
      const expire = (): void => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      // As connect does: a budget already spent aborts before the call starts.
      if (timeoutMs <= 0) expire();
      else timer = setTimeout(expire, timeoutMs);
    }
    // The caller went away before the answer: cancel (and the upstream request with it).
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort(new ConnectError("the operation was cancelled", Code.Canceled));
    };
    res.once("close", onClose);
    const context = createContext(route.method, req, controller.signal, deadline);
    let status = 200;
    let body: Uint8Array | string;
    try {
      const bytes = await readBody(req, maxRequestBytes);
      let message: unknown;
      try {
        message = fromJsonString(route.input, textDecoder.decode(bytes), jsonOptions);
      } catch (err) {
        throw ConnectError.from(err, Code.InvalidArgument);
      }
      const request: FastUnaryRequest = {
        stream: false,
        service: route.method.parent,
        method: route.method,
        requestMethod: "POST",
        url: req.url ?? "",
        signal: controller.signal,
        get header() {
          return context.requestHeader;
        },
        contextValues: context.values,
        message: message as UnaryRequest["message"],
        context,
      };
      const response = await route.invoke(request);
      body = toJsonString(route.output, response.message as never, jsonOptions);
    } catch (err) {
      const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      status = codeToHttpStatus(error.code);
      error.metadata.forEach((value, key) => context.responseHeader.set(key, value));
      body = errorToJsonBytes(error, jsonOptions);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      active.delete(controller);
      res.off("close", onClose);
    }
    if (res.destroyed) return;
    const outgoing: Record<string, string> = {};
    trailerMux(context.responseHeader, context.responseTrailer).forEach((value, key) => {
      outgoing[key] = value;
    });
    outgoing["content-type"] = "application/json";
    outgoing["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
    res.writeHead(status, outgoing);
    res.end(body);
  }
}

/** The interceptor request, carrying its handler context to the implementation. */
interface FastUnaryRequest extends UnaryRequest {
  readonly context: HandlerContext;
}

/**
 * A handler context as connect builds one, but lazy: request headers become a Headers
 * object only when something reads them (auth, tracing), and there is no second linked
 * AbortController.
 */
function createContext(
  method: DescMethodUnary,
  req: NodeRequest,
  signal: AbortSignal,
  deadline: number | undefined,
): HandlerContext {
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  let values: ReturnType<typeof createContextValues> | undefined;
  return {
    method,
    service: method.parent,
    requestMethod: "POST",
    protocolName: "connect",
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

async function readBody(req: NodeRequest, maxBytes: number): Promise<Uint8Array> {
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
