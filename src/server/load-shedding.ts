import type * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { errorDomain } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { endStreamEnvelope } from "../wire/envelope.js";
import type { NodeRequest, NodeResponse } from "./fast-call.js";

/** What a refused caller is told to wait before it retries (RetryInfo; Connect unary also `retry-after`). */
const retryAfterSeconds = 1;

/**
 * Refuses calls when the process is at its cap of calls in progress
 * (`server.maxConcurrentCalls`), in the caller's own protocol, before a byte of the request
 * is read: RESOURCE_EXHAUSTED with an `ErrorInfo` (reason SERVER_OVERLOADED) and a
 * `RetryInfo` — gRPC and gRPC-Web as a trailers-only response (status in the headers),
 * Connect streaming as an end-of-stream message, Connect unary (and anything else) as HTTP
 * 429 with the JSON error body. The answers are built once: refusing costs a write, so an
 * overloaded server does not spend on the refusals what it lacks for the calls.
 *
 * The request body is never read: node ends an HTTP/2 stream whose response finished
 * unread with RST_STREAM NO_ERROR (RFC 9113 §8.1, as gRPC servers do), and drops the body
 * of an HTTP/1.1 request.
 */
export interface LoadShedding {
  /** Answers a raw HTTP/2 stream speaking gRPC (not gRPC-Web); false when it speaks something else (refuse it with `refuseRequest`). */
  refuseStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  /** Answers an HTTP/1.1 or HTTP/2 compatibility request, whatever its protocol. */
  refuseRequest(req: NodeRequest, res: NodeResponse): void;
}

/**
 * RESOURCE_EXHAUSTED, reason SERVER_OVERLOADED, with a RetryInfo of `retryAfterSeconds`: the
 * answer of every refusal the server makes to protect itself.
 */
export function serverOverloadedError(message: string, metadata: Record<string, string>): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    { desc: ErrorInfoSchema, value: { reason: reasons.serverOverloaded, domain: errorDomain, metadata } },
    { desc: RetryInfoSchema, value: { retryDelay: create(DurationSchema, { seconds: BigInt(retryAfterSeconds) }) } },
  ]);
}

export function createLoadShedding(maxConcurrentCalls: number): LoadShedding {
  const error = serverOverloadedError(
    `server overloaded: ${maxConcurrentCalls} calls in progress (server.maxConcurrentCalls); retry later`,
    { maxConcurrentCalls: String(maxConcurrentCalls) },
  );
  // gRPC and gRPC-Web: trailers-only, the status in the response headers.
  const grpcStatus: Record<string, string> = {};
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    grpcStatus[key] = value;
  });
  // Connect unary (and GET, or an unknown protocol): the HTTP status the code maps to, JSON body.
  const unaryStatus = codeToHttpStatus(error.code);
  const unaryBody = Buffer.from(errorToJsonBytes(error, {}));
  const unaryHeaders = {
    "content-type": "application/json",
    "content-length": String(unaryBody.length),
    "retry-after": String(retryAfterSeconds),
  };
  // Connect streaming: HTTP 200 and the error in the end-of-stream message.
  const streamBody = endStreamEnvelope(JSON.stringify(endStreamToJson(new Headers(), error, {})));

  return {
    refuseStream(stream, headers) {
      const contentType = headers["content-type"];
      if (contentType === undefined || !isGrpc(contentType)) return false;
      // A stream the caller already reset cannot be answered (respond would throw).
      if (stream.destroyed) return true;
      stream.on("error", ignore);
      stream.respond({ ":status": 200, "content-type": contentType, ...grpcStatus }, { endStream: true });
      return true;
    },

    refuseRequest(req, res) {
      if (res.destroyed) return;
      const contentType = req.headers["content-type"];
      if (contentType !== undefined && (isGrpc(contentType) || isGrpcWeb(contentType))) {
        res.writeHead(200, { "content-type": contentType, ...grpcStatus });
        res.end();
      } else if (contentType !== undefined && isConnectStream(contentType)) {
        res.writeHead(200, { "content-type": contentType, "content-length": String(streamBody.length) });
        res.end(streamBody);
      } else {
        res.writeHead(unaryStatus, unaryHeaders);
        res.end(unaryBody);
      }
    },
  };
}

/** gRPC (`application/grpc`, `+proto`, `+json`…), not gRPC-Web. */
function isGrpc(contentType: string): boolean {
  return /^application\/grpc(?:$|[+;])/i.test(contentType);
}

function isGrpcWeb(contentType: string): boolean {
  return /^application\/grpc-web/i.test(contentType);
}

function isConnectStream(contentType: string): boolean {
  return /^application\/connect\+/i.test(contentType);
}

function ignore(): void {}
