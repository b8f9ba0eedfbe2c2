import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../../../../gen/google/rpc/error_details_pb.js";
import { hasBrand, httpError, plainHttpError } from "../common/errors.js";

/**
 * A request field the OpenAI-compatible API refuses (unknown, unsupported or of the wrong
 * JSON type): INVALID_ARGUMENT to everything that handles ConnectErrors, and to an OpenAI
 * caller a 400 whose `param` names the field and whose `code` is OpenAI's own
 * (`unsupported_parameter`, `invalid_type`, `missing_required_parameter`, …).
 * The message names the field, never quotes its value (no prompt text in errors).
 */
const paramErrorBrand = Symbol("sluice.openAiParamError");

export class OpenAiParamError extends ConnectError {
  /**
   * ConnectError answers `instanceof` by shape (its static Symbol.hasInstance), so any
   * ConnectError would pass `instanceof OpenAiParamError`: this brand tells them apart.
   */
  readonly [paramErrorBrand] = true;

  constructor(
    readonly param: string | undefined,
    message: string,
    readonly openaiCode: string = "invalid_value",
  ) {
    super(message, Code.InvalidArgument);
    this.name = "OpenAiParamError";
  }
}

/** Whether `err` is an OpenAiParamError (see its brand). */
export function isParamError(err: unknown): err is OpenAiParamError {
  return hasBrand(err, paramErrorBrand);
}

/** An error as an OpenAI caller receives it: HTTP status, headers to add, and the JSON body. */
export interface OpenAiErrorAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** `{"error":{"message","type","param","code"}}`, serialized. */
  readonly body: string;
}

/** OpenAI's `error.type` for a status (its API reference; `overloaded_error` as Anthropic's SDKs know it). */
export function errorType(status: number): string {
  switch (status) {
    case 400:
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
    case 405:
      return "invalid_request_error";
    case 409:
      return "conflict_error";
    case 429:
      return "rate_limit_error";
    case 504:
      return "timeout_error";
    default:
      return "api_error";
  }
}

/** The body of an OpenAI error. */
export function errorBody(message: string, type: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/**
 * A ConnectError (from the interceptor chain, the service or the lane) in OpenAI's shape:
 * the status Connect gives its code (400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504;
 * 422 for IDEMPOTENCY_KEY_REUSED),
 * `type` by status, `code` the ErrorInfo reason in lower case (`model_not_found`,
 * `rate_limited`, `upstream_unavailable`…) — or the OpenAiParamError's own code —, `param`
 * the first BadRequest field. Headers: the error's metadata (`retry-after` of a limit),
 * `retry-after` from a RetryInfo when the metadata has none, and `x-should-retry` (which
 * the OpenAI SDKs obey) saying whether retrying can help: false for a 500 (a bug, refused
 * provider credentials) and for a wait longer than the SDK would honour (a spent budget).
 */
export function toOpenAiError(error: ConnectError): OpenAiErrorAnswer {
  if (isParamError(error)) {
    const { status, headers } = plainHttpError(error);
    return { status, headers, body: errorBody(error.rawMessage, errorType(status), error.param ?? null, error.openaiCode) };
  }
  const { status, headers, reason } = httpError(error);
  const code = reason === "" ? null : reason.toLowerCase();
  const field = error.details.length > 0 ? error.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field : undefined;
  const param = field !== undefined && field !== "" ? openAiParam(field) : null;
  let type = errorType(status);
  if (code?.endsWith("overloaded")) type = "overloaded_error";
  return { status, headers, body: errorBody(error.rawMessage, type, param, code) };
}

/** The service's proto field names where OpenAI's request says it otherwise. */
function openAiParam(field: string): string {
  return field === "max_output_tokens" ? "max_completion_tokens" : field;
}

/**
 * The SSE event that ends a stream which failed after its first bytes: `data: {"error":…}`.
 * The OpenAI SDKs raise an APIError for it; no `[DONE]` follows.
 */
export function sseErrorEvent(error: ConnectError): string {
  return `data: ${toOpenAiError(error).body}\n\n`;
}
