import { Code } from "@connectrpc/connect";

/**
 * How Sluice treats one kind of upstream failure. This file is the single place that
 * decides what is retryable (DESIGN §4, habit 5): adapters, retry, fallback and breakers
 * all read these fields instead of looking at status codes themselves.
 */
export interface FailureClass {
  /** Connect code the caller sees. */
  readonly code: Code;
  /** google.rpc.ErrorInfo reason (domain "sluice"). */
  readonly reason: string;
  /** Trying the same deployment again may succeed. */
  readonly retryable: boolean;
  /** Another deployment may succeed. */
  readonly failover: boolean;
  /** The deployment is at fault: counts against its circuit breaker. A caller's bad request never does. */
  readonly deploymentFault: boolean;
}

function failure(
  code: Code,
  reason: string,
  retryable: boolean,
  failover: boolean,
  deploymentFault: boolean,
): FailureClass {
  return Object.freeze({ code, reason, retryable, failover, deploymentFault });
}

export const failures = {
  badRequest: failure(Code.InvalidArgument, "UPSTREAM_BAD_REQUEST", false, false, false),
  contextLength: failure(Code.InvalidArgument, "CONTEXT_LENGTH_EXCEEDED", false, false, false),
  upstreamAuth: failure(Code.Internal, "UPSTREAM_AUTH", false, true, true),
  upstreamBilling: failure(Code.Internal, "UPSTREAM_BILLING", false, true, true),
  modelNotFound: failure(Code.NotFound, "UPSTREAM_MODEL_NOT_FOUND", false, true, true),
  rateLimited: failure(Code.ResourceExhausted, "UPSTREAM_RATE_LIMITED", true, true, false),
  overloaded: failure(Code.Unavailable, "UPSTREAM_OVERLOADED", true, true, true),
  serverError: failure(Code.Unavailable, "UPSTREAM_UNAVAILABLE", true, true, true),
  timeout: failure(Code.Unavailable, "UPSTREAM_TIMEOUT", true, true, true),
  connection: failure(Code.Unavailable, "UPSTREAM_CONNECTION", true, true, true),
  /** The stream ended before the provider's terminal event: a cut, never a success. */
  streamCut: failure(Code.Unavailable, "UPSTREAM_STREAM_INCOMPLETE", true, true, true),
  /** The provider answered 2xx with something we cannot read. */
  malformed: failure(Code.Internal, "UPSTREAM_MALFORMED", false, true, true),
  /** An unexpected status (e.g. 3xx, 418). */
  unexpected: failure(Code.Unknown, "UPSTREAM_UNEXPECTED_STATUS", false, true, true),
  conflict: failure(Code.Aborted, "UPSTREAM_CONFLICT", true, true, false),
} as const;

/** Facts of an HTTP failure an adapter has read off the response. */
export interface HttpFailureFacts {
  readonly status: number;
  /** `x-should-retry`, when the provider sent it: it overrides the status rule. */
  readonly shouldRetry?: boolean | undefined;
  /** Provider error type/code (OpenAI `error.code`, Anthropic `error.type`), lower-case. */
  readonly providerCode?: string | undefined;
  /** Provider error message, used only to recognise context-length errors. */
  readonly providerMessage?: string | undefined;
}

const contextLengthCodes = new Set(["context_length_exceeded", "string_above_max_length"]);
const contextLengthMessage = /context length|context window|prompt is too long|too many tokens|maximum context/i;

/** Classifies an upstream HTTP status (DESIGN §4). */
export function classifyHttpFailure(facts: HttpFailureFacts): FailureClass {
  const base = classifyStatus(facts);
  if (facts.shouldRetry === undefined || base.retryable === facts.shouldRetry) return base;
  // `x-should-retry` is the provider telling us more than the status can.
  return facts.shouldRetry
    ? { ...base, retryable: true, failover: true }
    : { ...base, retryable: false };
}

function classifyStatus({ status, providerCode, providerMessage }: HttpFailureFacts): FailureClass {
  switch (status) {
    case 400:
    case 422:
      if (
        (providerCode !== undefined && contextLengthCodes.has(providerCode)) ||
        (providerMessage !== undefined && contextLengthMessage.test(providerMessage))
      ) {
        return failures.contextLength;
      }
      return failures.badRequest;
    case 413:
      return failures.contextLength;
    case 401:
    case 403:
      return failures.upstreamAuth;
    case 402:
      return failures.upstreamBilling;
    case 404:
      return failures.modelNotFound;
    case 408:
      return failures.timeout;
    case 409:
      return failures.conflict;
    case 429:
      return failures.rateLimited;
    case 529:
      return failures.overloaded;
    default:
      if (status >= 500) return failures.serverError;
      if (status >= 400) return failures.badRequest;
      return failures.unexpected;
  }
}

const connectionErrorCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);
const timeoutErrorCodes = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** Classifies a socket / undici error (no HTTP status). */
export function classifyNetworkError(err: unknown): FailureClass {
  const code = errorCode(err);
  if (code !== undefined && timeoutErrorCodes.has(code)) return failures.timeout;
  if (code !== undefined && connectionErrorCodes.has(code)) return failures.connection;
  return failures.connection;
}

/** The `code` of an error or of its cause chain (undici wraps socket errors). */
export function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
