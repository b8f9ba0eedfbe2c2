import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Message } from "@bufbuild/protobuf";
import { boundError } from "../errors/bounded-error.js";
import { envelopeText, parseBinary } from "../wire/envelope.js";
import type { ActiveCalls } from "./active-calls.js";
import { abandonCall, startFastCall, type FastCall, outgoingHeaders } from "./fast-call.js";
import { requestCompression } from "./lane-decompress.js";
import { timeoutFromHeader } from "./lane-headers.js";
import { parseJsonMessage } from "./lane-json.js";
import type { LaneRoute, LaneRoutes } from "./lane-routes.js";
import { drained, readSingleMessage } from "./read-envelope.js";
import { grpcDeadlineCap, maxTimerMs } from "./timeout-clamp.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

export interface GrpcFastLaneOptions {
  /** The route table, prepared once for every lane. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
  /** The server's deadline cap (timeout-clamp.ts). Default: what a timer holds. */
  readonly maxDeadlineMs?: number | undefined;
}

/** Serves an HTTP/2 stream, or returns false (untouched) so the general Connect adapter serves it. */
export type GrpcStreamLane = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** gRPC content types (connect's `contentTypeRegExp`): binary, or JSON when group 1 matched. */
const grpcContentType = /^application\/grpc(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i;
const protoContentType = "application/grpc+proto";
const jsonContentType = "application/grpc+json";
/** The trailers of a call that succeeded and set none of its own. */
const okTrailers: http2.OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });

/**
 * gRPC over HTTP/2 with binary protobuf — what every generated gRPC client sends — or JSON
 * (`application/grpc+json`, connect-es' gRPC transport with `useBinaryFormat: false`), for
 * the unary and server-streaming RPCs, without the general adapter's per-call machinery
 * (see connect-unary-fast-lane.ts for what that costs). JSON is parsed by the route's own
 * codec, whose errors quote at most 64 characters of input (protobuf-es, behind
 * connect-node, quotes an unknown key whole: a 2 MB key made trailers no client reads).
 *
 * Wire behaviour follows connect-node's gRPC handler: response headers go out with the
 * first message (so an implementation can still set headers), trailers carry
 * `grpc-status`, `grpc-message` (percent-encoded) and `grpc-status-details-bin`
 * (google.rpc.Status, via connect's own `setTrailerStatus`), timeouts are parsed by
 * connect's `parseTimeout`. A gzip or br request (`grpc-encoding`) is decompressed as
 * connect-node does (lane-decompress.ts); the answer is never compressed. Anything else —
 * another encoding, HTTP/1.1, client or bidi streaming, a malformed grpc-timeout — is left
 * to connect-node.
 * Tests: grpc-fast-lane.test.ts compares it with connect-node; the integration suites and
 * the Go, Java and Python clients run through it.
 */
export function createGrpcFastLane(options: GrpcFastLaneOptions): GrpcStreamLane {
  const { routes, active, maxRequestBytes, requestBytes } = options;
  const maxDeadlineMs = grpcDeadlineCap(options.maxDeadlineMs ?? maxTimerMs);

  return function grpcFastLane(stream, headers) {
    if (headers[":method"] !== "POST") return false;
    const url = headers[":path"];
    const route = url === undefined ? undefined : routes.get(url);
    if (route === undefined) return false;
    const contentType = headers["content-type"];
    if (contentType === undefined) return false;
    const type = grpcContentType.exec(contentType);
    if (type === null) return false;
    const encoding = headers["grpc-encoding"];
    const compression = encoding === undefined ? undefined : requestCompression(encoding);
    if (compression === null) return false;
    const timeoutMs = timeoutFromHeader(headers["grpc-timeout"], parseTimeout, maxDeadlineMs);
    if (timeoutMs === null) return false;
    // A reset stream may emit "error"; its "close" already cancels the call.
    stream.on("error", ignoreStreamError);
    const call = startFastCall(route.method, "grpc", url!, headers, stream, timeoutMs, active);
    void serve(route, type[1] !== undefined, stream, call, compression);
    return true;
  };

  async function serve(
    route: LaneRoute,
    json: boolean,
    stream: http2.ServerHttp2Stream,
    call: FastCall,
    compression: Compression | undefined,
  ): Promise<void> {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      let headersSent = false;
      /** Sends the response headers once, with the first message or the trailers. */
      const sendHeaders = (): void => {
        if (headersSent) return;
        headersSent = true;
        stream.respond(outgoingHeaders(call, json ? jsonContentType : protoContentType, { ":status": 200 }), respondOptions);
      };
      let error: ConnectError | undefined;
      try {
        const input = await readSingleMessage(
          stream,
          route.kind === "unary" ? "unary" : "server-streaming",
          maxRequestBytes,
          json ? (bytes) => parseJsonMessage(route.inputJson, bytes) : (bytes) => parseBinary(route.input, bytes),
          { skipEndStream: false, budget: requestBytes, compression, digest: call.bodyDigest() },
        );
        if (route.kind === "unary") {
          const response = await route.invoke(call, input);
          const frame = envelopeOf(route, json, response.message);
          if (stream.destroyed) return;
          sendHeaders();
          stream.write(frame);
        } else {
          const response = await route.invoke(call, input);
          for await (const message of response.message) {
            if (stream.destroyed) break;
            sendHeaders();
            if (!stream.write(envelopeOf(route, json, message))) await drained(stream, call.signal);
          }
        }
      } catch (err) {
        error = boundError(
          err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
        );
      } finally {
        call.end();
      }
      if (stream.destroyed) return;
      sendHeaders();
      const set = call.responseTrailers();
      let trailers: http2.OutgoingHttpHeaders = okTrailers;
      if (error !== undefined || set !== undefined) {
        trailers = {};
        setTrailerStatus(new Headers(set), error).forEach((value, key) => {
          trailers[key] = value;
        });
      }
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end();
    } catch {
      abandonCall(stream);
    }
  }
}

/** A response message in its envelope, JSON or binary. */
function envelopeOf(route: LaneRoute, json: boolean, message: Message): Buffer {
  return json ? envelopeText(route.outputJson.stringify(message)) : route.outputBinary.envelope(message);
}

/** Response headers always leave room for the trailers (grpc-status). */
const respondOptions: http2.ServerStreamResponseOptions = { waitForTrailers: true };

function ignoreStreamError(): void {}
