import type { ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../../../gen/google/rpc/error_details_pb.js";
import { reasons } from "../../../errors/reasons.js";

/**
 * What the OpenAI- and Anthropic-compatible APIs both make of a ConnectError: the HTTP
 * status, the headers, the ErrorInfo reason. The error bodies are each format's own
 * (openai/errors.ts, anthropic/errors.ts).
 */

/** Whether `err` carries `brand` (ConnectError answers `instanceof` by shape: a brand tells a subclass apart). */
export function hasBrand(err: unknown, brand: symbol): boolean {
  return typeof err === "object" && err !== null && (err as Record<symbol, unknown>)[brand] === true;
}

/** The HTTP status Connect gives the error's code, and its metadata as headers. */
export function plainHttpError(error: ConnectError): { status: number; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  error.metadata.forEach((value, key) => {
    headers[key] = value;
  });
  return { status: codeToHttpStatus(error.code), headers };
}

/** Waits the OpenAI and Anthropic SDKs honour from `retry-after` (above, they fall back to their own backoff). */
const sdkMaxRetryAfterSeconds = 60;

export interface HttpError {
  readonly status: number;
  /** The error's metadata (`retry-after` of a limit), `retry-after` from a RetryInfo, `x-should-retry`. */
  readonly headers: Record<string, string>;
  /** The ErrorInfo's reason as given; "" without one. */
  readonly reason: string;
}

/**
 * A ConnectError as HTTP: the status Connect gives its code (400, 401, 403, 404, 409, 429,
 * 499, 500, 501, 503, 504; 422 for IDEMPOTENCY_KEY_REUSED, as the usual HTTP
 * idempotency-key convention), `retry-after` from the error's metadata or its RetryInfo,
 * and `x-should-retry` (which the OpenAI and Anthropic SDKs obey) false where retrying
 * cannot help: a 500/501 (a bug, refused provider credentials), a wait longer than the SDK
 * honours (a spent budget), a 429 without a delay (one call larger than a limit).
 */
export function httpError(error: ConnectError): HttpError {
  let { status, headers } = plainHttpError(error);
  let reason = "";
  let retryAfterSeconds: number | undefined;
  if (error.details.length > 0) {
    reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
    if (reason === reasons.idempotencyKeyReused) status = 422;
    const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
    if (delay !== undefined) retryAfterSeconds = Math.max(1, Math.ceil(Number(delay.seconds) + delay.nanos / 1e9));
  }
  const given = headers["retry-after"];
  if (given !== undefined) retryAfterSeconds = Number(given);
  else if (retryAfterSeconds !== undefined) headers["retry-after"] = String(retryAfterSeconds);
  if (status === 500 || status === 501 || (retryAfterSeconds !== undefined && retryAfterSeconds > sdkMaxRetryAfterSeconds)) {
    headers["x-should-retry"] = "false";
  } else if (status === 429 && retryAfterSeconds === undefined) {
    headers["x-should-retry"] = "false";
  }
  return { status, headers, reason };
}
