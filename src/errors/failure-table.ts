import { Code } from "@connectrpc/connect";
import { reasons, type Reason } from "./reasons.js";
import { redactSecrets } from "./redact-secrets.js";

/**
 * How Sluice treats one kind of upstream failure. This file is the single place that
 * decides what is retryable, what fails over, what counts against a breaker and what the
 * caller may read: adapters, retry, fallback, breakers and error messages all read these
 * fields instead of looking at status codes or reason strings themselves.
 */
export interface FailureClass {
  /** Connect code the caller sees. */
  readonly code: Code;
  /** google.rpc.ErrorInfo reason (domain "sluice"). */
  readonly reason: Reason;
  /** Trying the same deployment again may succeed. */
  readonly retryable: boolean;
  /** Another deployment may succeed. */
  readonly failover: boolean;
  /** The deployment is at fault: counts against its circuit breaker. A caller's bad request never does. */
  readonly deploymentFault: boolean;
  /**
   * The prompt is too long for this model: another alias with a larger context window may
   * serve it, so it fails over where the alias opts in (`fallbackOnContextLength`).
   */
  readonly contextLength: boolean;
  /**
   * The provider's own message may reach the caller (redacted, bounded): the caller needs
   * it to fix a request. Never for auth or billing failures, whose messages can echo part
   * of the gateway's key or account.
   */
  readonly showProviderMessage: boolean;
  /** What the caller is told instead, when the provider's message is withheld. */
  readonly withheld?: ((provider: string) => string) | undefined;
}

interface FailureInit {
  readonly retryable: boolean;
  readonly failover: boolean;
  readonly deploymentFault: boolean;
  readonly contextLength?: boolean;
  readonly showProviderMessage?: boolean;
  readonly withheld?: (provider: string) => string;
}

function failure(code: Code, reason: Reason, init: FailureInit): FailureClass {
  return Object.freeze({ contextLength: false, showProviderMessage: true, code, reason, ...init });
}

/** The caller's fault: never retried, never a breaker failure. */
const callerFault = { retryable: false, failover: false, deploymentFault: false } as const;
/** The deployment's fault, and another one may do better. */
const deploymentDown = { retryable: true, failover: true, deploymentFault: true } as const;
/** The gateway's own account is refused: another deployment (another key) may work; the message is withheld. */
const accountRefused = { retryable: false, failover: true, deploymentFault: true, showProviderMessage: false } as const;

export const failures = {
  badRequest: failure(Code.InvalidArgument, reasons.upstreamBadRequest, callerFault),
  contextLength: failure(Code.InvalidArgument, reasons.contextLengthExceeded, { ...callerFault, contextLength: true }),
  upstreamAuth: failure(Code.Internal, reasons.upstreamAuth, {
    ...accountRefused,
    withheld: (provider) => `the gateway's credentials for ${provider} were refused`,
  }),
  upstreamBilling: failure(Code.Internal, reasons.upstreamBilling, {
    ...accountRefused,
    withheld: (provider) => `the gateway's ${provider} account cannot be billed`,
  }),
  modelNotFound: failure(Code.NotFound, reasons.upstreamModelNotFound, {
    retryable: false,
    failover: true,
    deploymentFault: true,
  }),
  rateLimited: failure(Code.ResourceExhausted, reasons.upstreamRateLimited, {
    retryable: true,
    failover: true,
    deploymentFault: false,
  }),
  overloaded: failure(Code.Unavailable, reasons.upstreamOverloaded, deploymentDown),
  serverError: failure(Code.Unavailable, reasons.upstreamUnavailable, deploymentDown),
  timeout: failure(Code.Unavailable, reasons.upstreamTimeout, deploymentDown),
  connection: failure(Code.Unavailable, reasons.upstreamConnection, deploymentDown),
  /** The stream ended before the provider's terminal event: a cut, never a success. */
  streamCut: failure(Code.Unavailable, reasons.upstreamStreamIncomplete, deploymentDown),
  /** The provider answered 2xx with something we cannot read. */
  malformed: failure(Code.Internal, reasons.upstreamMalformed, { retryable: false, failover: true, deploymentFault: true }),
  /** An unexpected status (e.g. 3xx, 418). */
  unexpected: failure(Code.Unknown, reasons.upstreamUnexpectedStatus, {
    retryable: false,
    failover: true,
    deploymentFault: true,
  }),
  conflict: failure(Code.Aborted, reasons.upstreamConflict, { retryable: true, failover: true, deploymentFault: false }),
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

/** Classifies an upstream HTTP status (README "Errors" lists the outcome of each). */
export function classifyHttpFailure(facts: HttpFailureFacts): FailureClass {
  const base = classifyStatus(facts);
  if (facts.shouldRetry === undefined || base.retryable === facts.shouldRetry) return base;
  // `x-should-retry` is the provider telling us more than the status can.
  return facts.shouldRetry ? { ...base, retryable: true, failover: true } : { ...base, retryable: false };
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
const timeoutErrorCodes = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

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

/** Longest excerpt of a provider's own message passed on to a caller. */
const maxProviderMessageChars = 500;

/**
 * The caller-facing text of an upstream failure: `prefix`, then what the provider said
 * when the failure class lets it through (keys redacted, bounded), or the class's own
 * words when it withholds it. Every adapter and the HTTP client build messages here.
 */
export function describeUpstreamFailure(
  prefix: string,
  failure: FailureClass,
  provider: string,
  providerMessage: string | undefined,
): string {
  if (!failure.showProviderMessage) return failure.withheld === undefined ? prefix : `${prefix}: ${failure.withheld(provider)}`;
  if (!providerMessage) return prefix;
  return `${prefix}: ${redactSecrets(providerMessage).slice(0, maxProviderMessageChars)}`;
}
