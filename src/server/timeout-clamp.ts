import type { IncomingHttpHeaders } from "node:http";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";

/*
 * Caller deadlines held to what a timer can hold. The protocols allow more than a Node
 * timer does: `connect-timeout-ms` up to 10 digits (~115 days), `grpc-timeout` up to
 * 99,999,999 hours. A timer asked for more than 2^31-1 ms fires after 1 ms, so a valid
 * long call would fail at once with DEADLINE_EXCEEDED. Every path clamps instead — a
 * deadline is never shortened, except to the maximum.
 */

/** The longest delay a Node timer holds: 2^31-1 ms (~24.8 days). */
export const maxTimerMs = 2_147_483_647;

/** The largest `grpc-timeout` value in milliseconds (8 digits). */
const maxGrpcMillis = 99_999_999;

/**
 * The longest deadline a gRPC or gRPC-Web call gets under `maxMs`: `maxMs` itself when
 * `grpc-timeout` can say it in milliseconds (up to ~27.7 hours), else rounded down to whole
 * seconds (the default 2^31-1 ms becomes 2,147,483 s) — so a call served by a lane and one
 * served by connect-node (which reads the rewritten header) get the same deadline.
 */
export function grpcDeadlineCap(maxMs: number): number {
  return maxMs <= maxGrpcMillis ? maxMs : Math.floor(maxMs / 1000) * 1000;
}

/** `ms` (at most grpcDeadlineCap of something) as a `grpc-timeout` value. */
function grpcTimeoutValue(ms: number): string {
  return ms <= maxGrpcMillis ? `${ms}m` : `${ms / 1000}S`;
}

/**
 * Rewrites a timeout header asking for more than the server allows (`maxMs`, at most
 * maxTimerMs) to the maximum, before connect-node reads it: connect-node would otherwise
 * start a timer that fires at once (its own `maxTimeoutMs` option rejects the call instead,
 * with INVALID_ARGUMENT — also wrong for a valid deadline). A malformed value is left for
 * connect-node to answer. Node's request headers object is mutable (http and the http2
 * compatibility request alike); interceptors on this path see the clamped value.
 */
export function clampTimeoutHeaders(headers: IncomingHttpHeaders, maxMs: number): void {
  const connect = headers["connect-timeout-ms"];
  if (connect !== undefined) {
    const ms = parseConnectTimeout(connect as string, Number.MAX_SAFE_INTEGER).timeoutMs;
    if (ms !== undefined && ms > maxMs) headers["connect-timeout-ms"] = String(maxMs);
  }
  const grpc = headers["grpc-timeout"];
  if (grpc !== undefined) {
    const cap = grpcDeadlineCap(maxMs);
    const ms = parseGrpcTimeout(grpc as string, Number.MAX_SAFE_INTEGER).timeoutMs;
    if (ms !== undefined && ms > cap) headers["grpc-timeout"] = grpcTimeoutValue(cap);
  }
}
