import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { parseBinary } from "../wire/envelope.js";
import type { ActiveCalls } from "./active-calls.js";
import { abandonCall, startFastCall, type FastCall } from "./fast-call.js";
import { isIdentityEncoding, timeoutFromHeader } from "./lane-headers.js";
import type { LaneRoute, LaneRoutes } from "./lane-routes.js";
import { drained, readSingleMessage } from "./read-envelope.js";

export interface GrpcFastLaneOptions {
  /** The route table, prepared once for every lane. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
}

/** Serves an HTTP/2 stream, or returns false (untouched) so the general Connect adapter serves it. */
export type GrpcStreamLane = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** gRPC binary content types (`application/grpc+json` is left to connect-node). */
const grpcProtoContentType = /^application\/grpc(?:\+proto)?$/i;
const responseContentType = "application/grpc+proto";
/** The trailers of a call that succeeded and set none of its own. */
const okTrailers: http2.OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });

/**
 * gRPC over HTTP/2 with binary protobuf — what every generated gRPC client sends — for
 * the unary and server-streaming RPCs, without the general adapter's per-call machinery
 * (see connect-unary-fast-lane.ts for what that costs).
 *
 * Wire behaviour follows connect-node's gRPC handler: response headers go out with the
 * first message (so an implementation can still set headers), trailers carry
 * `grpc-status`, `grpc-message` (percent-encoded) and `grpc-status-details-bin`
 * (google.rpc.Status, via connect's own `setTrailerStatus`), timeouts are parsed by
 * connect's `parseTimeout`. Anything else — compression, grpc+json, HTTP/1.1, client
 * or bidi streaming, a malformed grpc-timeout — is left to connect-node.
 * Tests: grpc-fast-lane.test.ts compares it with connect-node; the integration suites and
 * the Go, Java and Python clients run through it.
 */
export function createGrpcFastLane(options: GrpcFastLaneOptions): GrpcStreamLane {
  const { routes, active, maxRequestBytes } = options;

  return function grpcFastLane(stream, headers) {
    if (headers[":method"] !== "POST") return false;
    const url = headers[":path"];
    const route = url === undefined ? undefined : routes.get(url);
    if (route === undefined) return false;
    const contentType = headers["content-type"];
    if (contentType === undefined || !grpcProtoContentType.test(contentType)) return false;
    if (!isIdentityEncoding(headers["grpc-encoding"])) return false;
    const timeoutMs = timeoutFromHeader(headers["grpc-timeout"], parseTimeout);
    if (timeoutMs === null) return false;
    // A reset stream may emit "error"; its "close" already cancels the call.
    stream.on("error", ignoreStreamError);
    const call = startFastCall(route.method, "grpc", url!, headers, stream, timeoutMs, active);
    void serve(route, stream, call);
    return true;
  };

  async function serve(route: LaneRoute, stream: http2.ServerHttp2Stream, call: FastCall): Promise<void> {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      let headersSent = false;
      /** Sends the response headers once, with the first message or the trailers. */
      const sendHeaders = (): void => {
        if (headersSent) return;
        headersSent = true;
        const outgoing: http2.OutgoingHttpHeaders = { ":status": 200 };
        call.responseHeaders()?.forEach((value, key) => {
          outgoing[key] = value;
        });
        outgoing["content-type"] = responseContentType;
        stream.respond(outgoing, respondOptions);
      };
      let error: ConnectError | undefined;
      try {
        const input = await readSingleMessage(
          stream,
          route.kind === "unary" ? "unary" : "server-streaming",
          maxRequestBytes,
          (bytes) => parseBinary(route.input, bytes),
          { skipEndStream: false },
        );
        if (route.kind === "unary") {
          const response = await route.invoke(call, input);
          const frame = route.outputBinary.envelope(response.message);
          if (stream.destroyed) return;
          sendHeaders();
          stream.write(frame);
        } else {
          const response = await route.invoke(call, input);
          for await (const message of response.message) {
            if (stream.destroyed) break;
            sendHeaders();
            if (!stream.write(route.outputBinary.envelope(message))) await drained(stream, call.signal);
          }
        }
      } catch (err) {
        error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
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

/** Response headers always leave room for the trailers (grpc-status). */
const respondOptions: http2.ServerStreamResponseOptions = { waitForTrailers: true };

function ignoreStreamError(): void {}
