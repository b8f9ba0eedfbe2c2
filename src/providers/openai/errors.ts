import { classifyHttpFailure, describeUpstreamFailure } from "../../errors/failure-table.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import type { ProviderErrorFacts } from "../../transport/upstream-client.js";

/**
 * The error object of an OpenAI(-compatible) error body. OpenAI always sends
 * `{"error":{"message","type","param","code"}}` (openai_errors.md §1); compatible servers
 * vary: vLLM puts the fields at the top level with a numeric `code` (the HTTP status),
 * Ollama sends `{"error":"text"}`.
 */
interface ErrorObject {
  readonly message?: unknown;
  readonly type?: unknown;
  readonly code?: unknown;
}

function errorObject(body: unknown): ErrorObject | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error === "string") return { message: error };
  if (error !== null && typeof error === "object") return error as ErrorObject;
  // vLLM: {"object":"error","message":…,"type":…,"code":400}
  if ((body as { object?: unknown }).object === "error") return body as ErrorObject;
  return undefined;
}

/**
 * Reads an OpenAI error body into the facts the failure table classifies on: `code` is
 * `error.code` when it is a string, else `error.type`, lower-cased (a 400 with code
 * `context_length_exceeded` becomes CONTEXT_LENGTH_EXCEEDED). Unknown shapes give no facts.
 */
export function readOpenAIError(body: unknown): ProviderErrorFacts {
  const error = errorObject(body);
  if (error === undefined) return {};
  const code = typeof error.code === "string" && error.code !== "" ? error.code : error.type;
  return {
    code: typeof code === "string" && code !== "" ? code.toLowerCase() : undefined,
    message: typeof error.message === "string" ? error.message : undefined,
  };
}

/** A data payload that reports an error instead of a completion chunk (a top-level `error` key). */
export function isErrorPayload(payload: unknown): boolean {
  if (payload === null || typeof payload !== "object") return false;
  const error = (payload as { error?: unknown }).error;
  return error !== undefined && error !== null;
}

/**
 * The HTTP status an in-band error stands for. Errors inside a 200 stream carry no status,
 * so it is inferred from the error's own words and then classified by the one failure table
 * like any HTTP failure. Anything unrecognised counts as a server error: OpenAI's mid-stream
 * errors are `server_error`s, and a retry elsewhere is the useful reaction.
 */
function inferStatus(error: ErrorObject | undefined, code: string | undefined): number {
  const numeric = typeof error?.code === "number" ? error.code : Number.NaN;
  if (Number.isInteger(numeric) && numeric >= 400 && numeric <= 599) return numeric;
  switch (code) {
    case "invalid_request_error":
    case "invalid_value":
    case "context_length_exceeded":
    case "string_above_max_length":
    case "badrequesterror":
      return 400;
    case "authentication_error":
    case "invalid_api_key":
      return 401;
    case "permission_error":
      return 403;
    case "not_found_error":
    case "model_not_found":
    case "notfounderror":
      return 404;
    case "rate_limit_exceeded":
    case "rate_limit_error":
    case "insufficient_quota":
    case "tokens":
    case "requests":
      return 429;
    case "overloaded_error":
      return 529;
    default:
      return 500;
  }
}

/**
 * An error the provider reported in a 2xx answer: an SSE `event: error`, a `data:` JSON with
 * a top-level `error` key (what the OpenAI SDKs throw on, openai_errors.md §3), or a JSON
 * error body where a stream was expected. Classified through the failure table; like HTTP
 * auth failures, an auth error's text is withheld because it can echo part of the key.
 */
export function inBandError(provider: string, payload: unknown): UpstreamError {
  const error = errorObject(payload);
  const facts = readOpenAIError(payload);
  const failure = classifyHttpFailure({
    status: inferStatus(error, facts.code),
    providerCode: facts.code,
    providerMessage: facts.message,
  });
  const prefix = `provider ${provider} reported an error in its answer`;
  return new UpstreamError({ failure, provider, message: describeUpstreamFailure(prefix, failure, provider, facts.message) });
}
