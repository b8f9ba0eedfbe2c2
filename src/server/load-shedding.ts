import type * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { errorDomain, gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { endStreamEnvelope } from "../wire/envelope.js";
import type { NodeRequest, NodeResponse } from "./fast-call.js";

/** What a refused caller is told to wait before it retries (RetryInfo; Connect unary also `retry-after`). */
const retryAfterSeconds = 1;

/**
 * A refusal, answered in the caller's own protocol before a byte of the request is read:
 * gRPC and gRPC-Web as a trailers-only response (status in the headers), Connect streaming
 * as an end-of-stream message, Connect unary (and anything else) as the HTTP status the
 * code maps to with the JSON error body (and `retry-after` when it has a RetryInfo). The
 * answers are built once: refusing costs a write, so an overloaded server does not spend on
 * the refusals what it lacks for the calls.
 *
 * The request body is never read: node ends an HTTP/2 stream whose response finished
 * unread with RST_STREAM NO_ERROR (RFC 9113 §8.1, as gRPC servers do), and drops the body
 * of an HTTP/1.1 request.
 */
export interface Refusal {
  /** Answers a raw HTTP/2 stream speaking gRPC (not gRPC-Web); false when it speaks something else (refuse it with `refuseRequest`). */
  refuseStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  /** Answers an HTTP/1.1 or HTTP/2 compatibility request, whatever its protocol. */
  refuseRequest(req: NodeRequest, res: NodeResponse): void;
}

/**
 * The refusals of a process at its cap of calls in progress (`server.maxConcurrentCalls`),
 * each RESOURCE_EXHAUSTED with an `ErrorInfo` (reason SERVER_OVERLOADED) and a `RetryInfo`
 * (Connect unary: HTTP 429, `retry-after`) — and the one of a draining process.
 */
export interface LoadShedding {
  /** At the cap without a queue (`server.queue.size: 0`). */
  readonly noQueue: Refusal;
  /** At the cap with the queue full. */
  readonly queueFull: Refusal;
  /** Waited `server.queue.maxWaitMs` in the queue without a slot. */
  readonly queueTimeout: Refusal;
  /** At the cap or in the queue while draining: UNAVAILABLE, SERVER_SHUTTING_DOWN, like the calls a drain cancels. */
  readonly draining: Refusal;
}

/** `server.queue`: see CallQueueOptions. */
export interface LoadSheddingQueue {
  readonly size: number;
  readonly maxWaitMs: number;
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

export function createLoadShedding(
  maxConcurrentCalls: number,
  queue: LoadSheddingQueue = { size: 0, maxWaitMs: 0 },
): LoadShedding {
  const cap = String(maxConcurrentCalls);
  return {
    noQueue: createRefusal(
      serverOverloadedError(`server overloaded: ${cap} calls in progress (server.maxConcurrentCalls); retry later`, {
        maxConcurrentCalls: cap,
      }),
      retryAfterSeconds,
    ),
    queueFull: createRefusal(
      serverOverloadedError(
        `server overloaded: ${cap} calls in progress (server.maxConcurrentCalls) and ${queue.size} waiting (server.queue.size); retry later`,
        { maxConcurrentCalls: cap, queueSize: String(queue.size) },
      ),
      retryAfterSeconds,
    ),
    queueTimeout: createRefusal(
      serverOverloadedError(
        `server overloaded: no slot within ${queue.maxWaitMs} ms (server.queue.maxWaitMs) of ${cap} calls in progress (server.maxConcurrentCalls); retry later`,
        { maxConcurrentCalls: cap, maxWaitMs: String(queue.maxWaitMs) },
      ),
      retryAfterSeconds,
    ),
    draining: createRefusal(gatewayError(Code.Unavailable, reasons.serverShuttingDown, "server is shutting down"), undefined),
  };
}

/** One refusal's answers, built once; `retryAfter` (seconds) adds `retry-after` to the Connect unary answer. */
export function createRefusal(error: ConnectError, retryAfter: number | undefined): Refusal {
  // gRPC and gRPC-Web: trailers-only, the status in the response headers.
  const grpcStatus: Record<string, string> = {};
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    grpcStatus[key] = value;
  });
  // Connect unary (and GET, or an unknown protocol): the HTTP status the code maps to, JSON body.
  const unaryStatus = codeToHttpStatus(error.code);
  const unaryBody = Buffer.from(errorToJsonBytes(error, {}));
  const unaryHeaders: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(unaryBody.length),
  };
  if (retryAfter !== undefined) unaryHeaders["retry-after"] = String(retryAfter);
  // Connect streaming: HTTP 200 and the error in the end-of-stream message.
  const streamBody = endStreamEnvelope(JSON.stringify(endStreamToJson(new Headers(), error, {})));

  function refuseStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const contentType = headers["content-type"];
    if (contentType === undefined || !isGrpc(contentType)) return false;
    // A stream the caller already reset cannot be answered (respond would throw).
    if (stream.destroyed) return true;
    stream.on("error", ignore);
    stream.respond({ ":status": 200, "content-type": contentType, ...grpcStatus }, { endStream: true });
    return true;
  }

  return {
    refuseStream,

    refuseRequest(req, res) {
      if (res.destroyed) return;
      const contentType = req.headers["content-type"];
      // gRPC over HTTP/2 through the compatibility layer (a queued call, or no fast lanes):
      // answered on its stream, one HEADERS frame with END_STREAM. The compatibility layer
      // would end the stream with a frame of its own after the headers, which grpc-js reads
      // as a call without a status (INTERNAL).
      if ("stream" in res && !res.headersSent && refuseStream(res.stream, req.headers)) return;
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

/** Whether a raw HTTP/2 stream speaks gRPC (not gRPC-Web): the streams the gRPC lane takes raw. */
export function isGrpcStream(headers: http2.IncomingHttpHeaders): boolean {
  const contentType = headers["content-type"];
  return contentType !== undefined && isGrpc(contentType);
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
