import { UpstreamError } from "../../errors/gateway-error.js";
import { classifyHttpFailure, describeUpstreamFailure } from "../../errors/failure-table.js";
import type { ProviderErrorFacts } from "../../transport/upstream-client.js";
import { isObject } from "./wire.js";

/**
 * Reads Anthropic's error body `{"type":"error","error":{"type","message"},"request_id"}`
 * (https://docs.claude.com/en/api/errors). `code` is `error.type`, lower-cased, which
 * the failure table reads beside the HTTP status; anything else yields no facts.
 */
export function readAnthropicError(body: unknown): ProviderErrorFacts {
  if (!isObject(body)) return {};
  const error = body["error"];
  if (!isObject(error)) return {};
  const type = error["type"];
  const message = error["message"];
  return {
    code: typeof type === "string" ? type.toLowerCase() : undefined,
    message: typeof message === "string" ? message : undefined,
  };
}

/**
 * The HTTP status each documented `error.type` comes with (same page). An `event: error`
 * arrives inside a 200 stream, so the status that classifies it is the one the same
 * error would have had before the stream began: overloaded_error is a 529, and so on.
 */
const statusOfErrorType: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/**
 * The error for a mid-stream `event: error`, classified by the one failure table as if
 * its error type had been an HTTP status. An unknown or unreadable type counts as a
 * server error (500): the stream failed on the provider's side.
 * (errors.test.ts, anthropic-provider.test.ts "docs_error_event_overloaded").
 */
export function streamErrorEvent(provider: string, data: unknown): UpstreamError {
  const facts = readAnthropicError(data);
  const asStatus = (facts.code !== undefined ? statusOfErrorType[facts.code] : undefined) ?? 500;
  const failure = classifyHttpFailure({
    status: asStatus,
    providerCode: facts.code,
    providerMessage: facts.message,
  });
  const prefix = `provider ${provider} stream failed with ${facts.code ?? "an unknown error"}`;
  return new UpstreamError({ failure, provider, message: describeUpstreamFailure(prefix, failure, provider, facts.message) });
}
