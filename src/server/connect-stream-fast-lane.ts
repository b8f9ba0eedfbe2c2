import type { Writable } from "node:stream";
import type { JsonReadOptions, JsonWriteOptions, Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { endStreamToJson, parseTimeout } from "@connectrpc/connect/protocol-connect";
import { boundError } from "../errors/bounded-error.js";
import { endStreamEnvelope, envelopeText, parseBinary } from "../wire/envelope.js";
import type { ActiveCalls } from "./active-calls.js";
import {
  abandonCall,
  startFastCall,
  type FastCall,
  type FastLane,
  type NodeRequest,
  type NodeResponse,
  outgoingHeaders,
} from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import { timeoutFromHeader } from "./lane-headers.js";
import { parseJsonMessage } from "./lane-json.js";
import type { LaneRoutes, StreamLaneRoute } from "./lane-routes.js";
import { drained, readSingleMessage } from "./read-envelope.js";
import { maxTimerMs } from "./timeout-clamp.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

export interface ConnectStreamFastLaneOptions {
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

/** Connect streaming content types: JSON (what curl and browsers send) or binary. */
const streamContentType = /^application\/connect\+(?:(json)(?:; ?charset=utf-?8)?|(proto))$/i;

/**
 * Connect protocol server streaming (`application/connect+json` or `+proto`) — the
 * streaming call curl, browsers and connect clients make — without the general
 * adapter's per-call machinery (see connect-unary-fast-lane.ts; on streams its
 * async-iterable pipeline also adds work to every chunk).
 *
 * Wire behaviour follows connect-node: HTTP 200, the response headers go out with the
 * first envelope (so an implementation can still set headers), each event is one
 * envelope, and the stream ends with an end-of-stream envelope carrying the error (if
 * any) and the trailers as metadata, built by connect's own `endStreamToJson`.
 * A gzip or br request (`connect-content-encoding`, envelope flag 1) is decompressed as
 * connect-node does (lane-decompress.ts). Another encoding, a malformed timeout or an
 * unknown protocol version are left to connect-node (declined before reading a byte).
 * Responses are never compressed, which the protocol allows whatever the client accepts.
 * Tests: connect-stream-fast-lane.test.ts compares it with connect-node byte for byte.
 */
export function createConnectStreamFastLane(options: ConnectStreamFastLaneOptions): FastLane {
  const { routes, active, maxRequestBytes, requestBytes, jsonOptions } = options;
  const maxDeadlineMs = options.maxDeadlineMs ?? maxTimerMs;

  return function connectStreamFastLane(req, res) {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (route === undefined || route.kind !== "server_streaming") return false;
    const headers = req.headers;
    const contentType = headers["content-type"];
    if (contentType === undefined) return false;
    const type = streamContentType.exec(contentType);
    if (type === null) return false;
    const encoding = headers["connect-content-encoding"];
    const compression = encoding === undefined ? undefined : requestCompression(encoding);
    if (compression === null) return false;
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return false;
    const timeoutMs = timeoutFromHeader(headers["connect-timeout-ms"], parseTimeout, maxDeadlineMs);
    if (timeoutMs === null) return false;
    const call = startFastCall(route.method, "connect", req.url ?? "", req.headers, res, timeoutMs, active);
    void serve(route, type[2] !== undefined, req, res, call, compression);
    return true;
  };

  async function serve(
    route: StreamLaneRoute,
    binary: boolean,
    req: NodeRequest,
    res: NodeResponse,
    call: FastCall,
    compression: Compression | undefined,
  ): Promise<void> {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      let headersSent = false;
      /** Sends the response headers once, with the first envelope. */
      const sendHeaders = (): void => {
        if (headersSent) return;
        headersSent = true;
        res.writeHead(200, outgoingHeaders(call, binary ? "application/connect+proto" : "application/connect+json"));
      };
      const serialize = binary
        ? (message: Message) => route.outputBinary.envelope(message)
        : (message: Message) => envelopeText(route.outputJson.stringify(message));
      let error: ConnectError | undefined;
      try {
        const input = await readSingleMessage(
          req,
          "server-streaming",
          maxRequestBytes,
          binary ? (bytes) => parseBinary(route.input, bytes) : (bytes) => parseJsonMessage(route.inputJson, bytes),
          { skipEndStream: true, budget: requestBytes, compression, digest: call.bodyDigest() },
        );
        const response = await route.invoke(call, input);
        for await (const message of response.message) {
          if (res.destroyed) break;
          const frame = serialize(message);
          sendHeaders();
          // http.ServerResponse and Http2ServerResponse write alike; their union type does not say so.
          if (!(res as Writable).write(frame)) await drained(res, call.signal);
        }
      } catch (err) {
        error = boundError(
          err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
        );
      } finally {
        call.end();
      }
      if (res.destroyed) return;
      sendHeaders();
      const end = endStreamToJson(call.responseTrailers() ?? new Headers(), error, jsonOptions);
      res.end(endStreamEnvelope(JSON.stringify(end)));
    } catch {
      abandonCall(res);
    }
  }
}
