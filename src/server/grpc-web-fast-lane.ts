import type { Writable } from "node:stream";
import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { boundError } from "../errors/bounded-error.js";
import { envelope, envelopeText, parseBinary } from "../wire/envelope.js";
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
import { grpcWebTrailerFlag, readGrpcWebMessage } from "./grpc-web-request.js";
import { requestCompression } from "./lane-decompress.js";
import { timeoutFromHeader } from "./lane-headers.js";
import { parseJsonMessage } from "./lane-json.js";
import type { LaneRoute, LaneRoutes } from "./lane-routes.js";
import { drained } from "./read-envelope.js";
import { grpcDeadlineCap, maxTimerMs } from "./timeout-clamp.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

export interface GrpcWebFastLaneOptions {
  /** The route table, prepared once for every lane. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly maxRequestBytes: number;
  /** Request bytes being received across the process (server.maxBufferedRequestBytes). */
  readonly requestBytes: RequestByteBudget;
  /** The server's deadline cap (timeout-clamp.ts). Default: what a timer holds. */
  readonly maxDeadlineMs?: number | undefined;
}

/**
 * gRPC-Web content types (connect's `contentTypeRegExp`): text (base64) mode when group 1
 * matched, JSON messages when group 2 did.
 */
const grpcWebContentType = /^application\/grpc-web(-text)?(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i;
/** Response content types by [text][json]. */
const responseContentTypes = [
  ["application/grpc-web+proto", "application/grpc-web+json"],
  ["application/grpc-web-text+proto", "application/grpc-web-text+json"],
] as const;

/** The trailer envelope of a call that succeeded and set no trailers of its own. */
const okTrailerFrame = envelope(trailerSerialize(new Headers({ "grpc-status": "0" })), grpcWebTrailerFlag);
const okTrailerText = okTrailerFrame.toString("base64");

/**
 * gRPC-Web — what browser gRPC clients send — for the unary and server-streaming RPCs,
 * over HTTP/1.1 and HTTP/2, with binary or JSON messages (`+json`: parsed by the route's
 * own codec, whose errors quote at most 64 characters of input, where protobuf-es behind
 * connect-node quoted an unknown key whole), in both modes:
 * - binary (`application/grpc-web`, `+proto`): exactly what connect-node answers — HTTP 200,
 *   the response headers with the first message, one envelope per message, then a trailer
 *   envelope (flag 0x80) of `name: value` lines with `grpc-status`, `grpc-message` and
 *   `grpc-status-details-bin` set by connect's own `setTrailerStatus`;
 * - text (`application/grpc-web-text`, `+proto`: the stock grpc-web JavaScript client's
 *   default, which connect-node does not speak — it answers 415): the same envelopes, each
 *   base64-encoded on its own (the protocol lets padding fall between them), answered as
 *   `application/grpc-web-text+proto` (or `+json`); the request may be several padded
 *   base64 chunks. A malformed `grpc-timeout` is answered here, as connect-node answers it
 *   in binary mode.
 * A gzip or br request (`grpc-encoding`, envelope flag 1) is decompressed as connect-node
 * does (lane-decompress.ts). Another encoding and (binary mode) a malformed timeout are
 * left to connect-node. Responses are never compressed, which the protocol allows whatever
 * the client accepts.
 * Tests: grpc-web-fast-lane.test.ts (binary against connect-node byte for byte; text with a
 * decoder of its own), lane-cases.test.ts (gRPC-Web over HTTP/1.1 and HTTP/2).
 */
export function createGrpcWebFastLane(options: GrpcWebFastLaneOptions): FastLane {
  const { routes, active, maxRequestBytes, requestBytes } = options;
  const maxDeadlineMs = grpcDeadlineCap(options.maxDeadlineMs ?? maxTimerMs);

  return function grpcWebFastLane(req, res) {
    if (req.method !== "POST") return false;
    const url = req.url ?? "";
    const route = routes.get(url);
    if (route === undefined) return false;
    const headers = req.headers;
    const contentType = headers["content-type"];
    if (contentType === undefined) return false;
    const type = grpcWebContentType.exec(contentType);
    if (type === null) return false;
    const text = type[1] !== undefined;
    const encoding = headers["grpc-encoding"];
    const compression = encoding === undefined ? undefined : requestCompression(encoding);
    if (compression === null) return false;
    const timeout = headers["grpc-timeout"];
    const timeoutMs = timeoutFromHeader(timeout, parseTimeout, maxDeadlineMs);
    let refusal: ConnectError | undefined;
    if (timeoutMs === null) {
      if (!text) return false;
      refusal = parseTimeout(timeout as string, Number.MAX_SAFE_INTEGER).error;
    }
    const call = startFastCall(route.method, "grpc-web", url, headers, res, timeoutMs ?? undefined, active);
    void serve(route, text, type[2] !== undefined, req, res, call, refusal, compression);
    return true;
  };

  async function serve(
    route: LaneRoute,
    text: boolean,
    json: boolean,
    req: NodeRequest,
    res: NodeResponse,
    call: FastCall,
    refusal: ConnectError | undefined,
    compression: Compression | undefined,
  ): Promise<void> {
    // Never rejects: a failure while answering (a bug) resets this call, not the process.
    try {
      let headersSent = false;
      /** Sends the response headers once, with the first message or the trailers. */
      const sendHeaders = (): void => {
        if (headersSent) return;
        headersSent = true;
        res.writeHead(200, outgoingHeaders(call, responseContentTypes[text ? 1 : 0][json ? 1 : 0]));
      };
      // http.ServerResponse and Http2ServerResponse write alike; their union type does not say so.
      const send = (frame: Buffer): boolean => (res as Writable).write(text ? frame.toString("base64") : frame);
      let error: ConnectError | undefined;
      try {
        if (refusal !== undefined) throw refusal;
        const input = await readGrpcWebMessage(
          req,
          text,
          route.kind === "unary" ? "unary" : "server-streaming",
          maxRequestBytes,
          requestBytes,
          json ? (bytes) => parseJsonMessage(route.inputJson, bytes) : (bytes) => parseBinary(route.input, bytes),
          compression,
          call.bodyDigest(),
        );
        if (route.kind === "unary") {
          const response = await route.invoke(call, input);
          const frame = envelopeOf(route, json, response.message);
          if (res.destroyed) return;
          sendHeaders();
          send(frame);
        } else {
          const response = await route.invoke(call, input);
          for await (const message of response.message) {
            if (res.destroyed) break;
            const frame = envelopeOf(route, json, message);
            sendHeaders();
            if (!send(frame)) await drained(res, call.signal);
          }
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
      const set = call.responseTrailers();
      if (error === undefined && set === undefined) {
        res.end(text ? okTrailerText : okTrailerFrame);
        return;
      }
      const trailer = envelope(trailerSerialize(setTrailerStatus(new Headers(set), error)), grpcWebTrailerFlag);
      res.end(text ? trailer.toString("base64") : trailer);
    } catch {
      abandonCall(res);
    }
  }
}

/** A response message in its envelope, JSON or binary. */
function envelopeOf(route: LaneRoute, json: boolean, message: Message): Buffer {
  return json ? envelopeText(route.outputJson.stringify(message)) : route.outputBinary.envelope(message);
}
