import { Code, ConnectError } from "@connectrpc/connect";
import { hasBrand, httpError, plainHttpError } from "../common/errors.js";

/**
 * A request field the Anthropic-compatible API refuses (unknown, unsupported, missing or of
 * the wrong JSON type): INVALID_ARGUMENT to everything that handles ConnectErrors, a 400
 * `invalid_request_error` naming the field to an Anthropic caller. The message names the
 * field (cut to 64 characters), never quotes its value (no prompt text in errors).
 */
const paramErrorBrand = Symbol("sluice.anthropicParamError");

export class AnthropicParamError extends ConnectError {
  /** ConnectError answers `instanceof` by shape: this brand tells a refused field apart. */
  readonly [paramErrorBrand] = true;

  constructor(
    readonly param: string | undefined,
    message: string,
  ) {
    super(message, Code.InvalidArgument);
    this.name = "AnthropicParamError";
  }
}

export function isAnthropicParamError(err: unknown): err is AnthropicParamError {
  return hasBrand(err, paramErrorBrand);
}

/** Anthropic's `error.type`s (https://docs.claude.com/en/api/errors). */
export type AnthropicErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error";

/** Anthropic's `error.type` for an HTTP status. */
export function anthropicErrorType(status: number): AnthropicErrorType {
  switch (status) {
    case 400:
    case 405:
    case 409:
    case 413:
    case 415:
    case 422:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    default:
      return "api_error";
  }
}

/** `{"type":"error","error":{"type","message"}}`, with `request_id` when the call has one. */
export function anthropicErrorBody(type: AnthropicErrorType, message: string, requestId?: string): string {
  const body: Record<string, unknown> = { type: "error", error: { type, message } };
  if (requestId !== undefined && requestId !== "") body.request_id = requestId;
  return JSON.stringify(body);
}

export interface AnthropicErrorAnswer {
  readonly status: number;
  /** Headers to add: the error's metadata (`retry-after`), `retry-after` from RetryInfo, `x-should-retry`. */
  readonly headers: Record<string, string>;
  readonly type: AnthropicErrorType;
  readonly message: string;
}

/**
 * A ConnectError in Anthropic's terms: the HTTP status Connect gives its code (400, 401,
 * 403, 404, 409, 429, 499, 500, 501, 503, 504; 422 for IDEMPOTENCY_KEY_REUSED), `error.type` by status — `overloaded_error`
 * when the ErrorInfo reason says overloaded —, `retry-after` from the error's metadata or
 * its RetryInfo, and `x-should-retry` (which the Anthropic SDKs obey) false where retrying
 * cannot help: a 500/501, a wait longer than the SDK honours, a 429 without a delay (one
 * call larger than a limit).
 */
export function toAnthropicError(error: ConnectError): AnthropicErrorAnswer {
  if (isAnthropicParamError(error)) {
    const { status, headers } = plainHttpError(error);
    return { status, headers, type: "invalid_request_error", message: error.rawMessage };
  }
  const { status, headers, reason } = httpError(error);
  const type = reason.toLowerCase().endsWith("overloaded") ? "overloaded_error" : anthropicErrorType(status);
  return { status, headers, type, message: error.rawMessage };
}

/**
 * The SSE event that ends a stream which failed after it started: `event: error` with the
 * error body. Never followed by `message_stop`: the SDKs raise an APIError for it.
 */
export function sseErrorEvent(error: ConnectError, requestId?: string): string {
  const { type, message } = toAnthropicError(error);
  return `event: error\ndata: ${anthropicErrorBody(type, message, requestId)}\n\n`;
}
