import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, parseTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";
import { boundError } from "../errors/bounded-error.js";
import { parseBinary } from "../wire/envelope.js";
import type { ActiveCalls } from "./active-calls.js";
import { abandonCall, startFastCall, type FastLane, type NodeRequest, type NodeResponse } from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import { hasEntries, timeoutFromHeader } from "./lane-headers.js";
import { parseJsonMessage } from "./lane-json.js";
import type { LaneRoutes, UnaryLaneRoute } from "./lane-routes.js";
import { readRequestBody } from "./read-body.js";
import { maxTimerMs } from "./timeout-clamp.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

export interface ConnectUnaryFastLaneOptions {
  /** The route table, prepared once for every lane. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  /** The server's deadline cap (timeout-clamp.ts). Default: what a timer holds. */
  readonly maxDeadlineMs?: number | undefined;
}

/** connect's unary content types (its `contentTypeUnaryRegExp`), JSON and binary apart. */
const jsonContentType = /^application\/json(?:; ?charset=utf-?8)?$/i;
const protoContentType = /^application\/proto$/i;

/**
 * The Connect protocol's unary call — `POST` with `content-type: application/json`, what
 * curl and most HTTP clients send, or `application/proto`, connect clients' binary format —
 * served without the general adapter's per-call machinery (a universal request/response
 * pair, Headers objects, async-iterable pipelines and two linked AbortControllers that
 * abort, building a DOMException, after every call), which dominated a call's CPU in
 * profiles (bench/results has the numbers).
 *
 * It speaks exactly what connect-node would answer: same JSON options, same error body
 * (`errorToJsonBytes`, JSON in both formats), same HTTP status mapping, same timeout
 * parsing, and runs the same implementations behind the same interceptors — except that
 * binary bytes that do not parse are INVALID_ARGUMENT, where connect-node's own binary
 * parse says INTERNAL. A gzip or br body (`content-encoding`) is decompressed as
 * connect-node does (lane-decompress.ts: its limit applies to the decompressed size too);
 * the answer is not compressed, which the protocol allows whatever the client accepts.
 * Anything it does not handle — another content type or encoding, GET, an unknown path,
 * another protocol version, a malformed timeout header — is left to connect-node (it
 * returns false before touching the request).
 * Tests: the integration suites run every Connect unary call through this lane;
 * connect-unary-fast-lane.test.ts and lane-cases.test.ts compare it with connect-node.
 */
export function createConnectUnaryFastLane(options: ConnectUnaryFastLaneOptions): FastLane {
  const { routes, active, maxRequestBytes, requestBytes, jsonOptions } = options;
  const maxDeadlineMs = options.maxDeadlineMs ?? maxTimerMs;

  return function fastLane(req, res) {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (route === undefined || route.kind !== "unary") return false;
    const headers = req.headers;
    const contentType = headers["content-type"];
    if (contentType === undefined) return false;
    let binary = false;
    if (!jsonContentType.test(contentType)) {
      if (!protoContentType.test(contentType)) return false;
      binary = true;
    }
    const encoding = headers["content-encoding"];
    const compression = encoding === undefined ? undefined : requestCompression(encoding);
    if (compression === null) return false;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return false;
    const timeoutMs = timeoutFromHeader(headers["connect-timeout-ms"], parseTimeout, maxDeadlineMs);
    if (timeoutMs === null) return false;
    void serve(route, binary, req, res, timeoutMs, compression);
    return true;
  };

  async function serve(
    route: UnaryLaneRoute,
    binary: boolean,
    req: NodeRequest,
    res: NodeResponse,
    timeoutMs: number | undefined,
    compression: Compression | undefined,
  ) {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      const call = startFastCall(route.method, "connect", req.url ?? "", req.headers, res, timeoutMs, active);
      const { context } = call;
      let status = 200;
      let body: Uint8Array | string;
      try {
        let bytes: Uint8Array = await readRequestBody(req, maxRequestBytes, requestBytes, call.bodyDigest());
        if (compression !== undefined) bytes = await compression.decompress(bytes, maxRequestBytes);
        const message = binary ? parseBinary(route.input, bytes) : parseJsonMessage(route.inputJson, bytes);
        const response = await route.invoke(call, message);
        // The binary writer builds an envelope; the unary body is the message without its 5-byte prefix.
        body = binary ? route.outputBinary.envelope(response.message).subarray(5) : route.outputJson.stringify(response.message);
      } catch (err) {
        const error = boundError(
          err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
        );
        status = codeToHttpStatus(error.code);
        if (hasEntries(error.metadata)) {
          error.metadata.forEach((value, key) => {
            context.responseHeader.set(key, value);
          });
        }
        body = errorToJsonBytes(error, jsonOptions);
      } finally {
        call.end();
      }
      if (res.destroyed) return;
      const outgoing: Record<string, string> = {};
      const header = call.responseHeaders();
      const trailer = call.responseTrailers();
      const copy = (value: string, key: string): void => {
        outgoing[key] = value;
      };
      // Unary Connect sends trailers as `trailer-`-prefixed headers; without any, the headers
      // go out as they are (no merged Headers copy per call — every call sets route headers).
      if (trailer !== undefined) trailerMux(header ?? new Headers(), trailer).forEach(copy);
      else header?.forEach(copy);
      // Errors are JSON in both formats, as connect writes them.
      outgoing["content-type"] = binary && status === 200 ? "application/proto" : "application/json";
      outgoing["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
      res.writeHead(status, outgoing);
      res.end(body);
    } catch {
      abandonCall(res);
    }
  }
}
