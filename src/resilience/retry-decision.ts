import { UpstreamError } from "../errors/gateway-error.js";
import type { FailureClass } from "../errors/failure-table.js";
import { backoffDelayMs, type BackoffOptions } from "./backoff.js";

/** Where one call stands on one deployment when an attempt has just failed. */
export interface RetryState {
  /** Attempts made so far on this deployment, the one that just failed included (>= 1). */
  readonly attempt: number;
  /** Attempts allowed per deployment, the first included (config `retry.maxAttempts`). */
  readonly maxAttempts: number;
  /** Time spent on this call so far, all deployments and waits included. */
  readonly elapsedMs: number;
  /** Time budget for every attempt and wait of the call (config `retry.totalBudgetMs`). */
  readonly totalBudgetMs: number;
  /** A provider-requested wait longer than this is not worth it: try another deployment. */
  readonly maxRetryAfterMs: number;
  /** The alias opts in to failing over on a context-length error (config `fallbackOnContextLength`). */
  readonly fallbackOnContextLength?: boolean | undefined;
}

/** Why the call stops trying this deployment. */
export type GiveUpReason =
  /** The failure table says the same deployment will not do better (e.g. 401, 404, 400). */
  | "not-retryable"
  /** `maxAttempts` reached on this deployment. */
  | "attempts-exhausted"
  /** The provider asked for a wait longer than `maxRetryAfterMs`. */
  | "retry-after-too-long"
  /** Waiting would overrun `totalBudgetMs`. */
  | "over-time-budget";

export type RetryDecision =
  | { readonly kind: "retry"; readonly delayMs: number; readonly reason: "retry-after" | "backoff" }
  | { readonly kind: "failover"; readonly reason: GiveUpReason }
  /** `not-upstream`: the caller's own error, cancel or deadline, or a gateway error — never retried. */
  | { readonly kind: "fail"; readonly reason: GiveUpReason | "not-upstream" };

/**
 * What to do after an attempt failed: wait and retry the same deployment, fail over to the
 * next one, or fail the call. Pure: the caller sleeps (on its AbortSignal), consults the
 * process-wide retry budget, and moves to the next deployment.
 *
 * Only the failure table decides what is retryable: this reads `UpstreamError.failure`
 * (`retryable`, `failover`, `contextLength`; `x-should-retry` already folded in)
 * and never looks at a status code. Anything that is not an UpstreamError — a bad request
 * we rejected, the caller's CANCELLED / DEADLINE_EXCEEDED (`abortError`), a bug — fails at once.
 */
export function decideRetry(
  error: unknown,
  state: RetryState,
  backoff: BackoffOptions,
  random: () => number = Math.random,
): RetryDecision {
  if (!(error instanceof UpstreamError)) return failNotUpstream;
  const { failure, retryAfterMs } = error;
  if (!failure.retryable) return giveUp(failure, "not-retryable", state);
  if (state.attempt >= state.maxAttempts) return giveUp(failure, "attempts-exhausted", state);

  if (retryAfterMs !== undefined) {
    // Honour the provider exactly — never less, and never replaced by a shorter jittered
    // backoff — or move on; a shorter wait would only earn another 429.
    if (retryAfterMs > state.maxRetryAfterMs) return giveUp(failure, "retry-after-too-long", state);
    if (state.elapsedMs + retryAfterMs > state.totalBudgetMs) return giveUp(failure, "over-time-budget", state);
    return { kind: "retry", delayMs: retryAfterMs, reason: "retry-after" };
  }

  const delayMs = backoffDelayMs(state.attempt, backoff, random);
  // A backoff that outlives the call's budget is a wait for nothing: the retry could not
  // finish in time, so another deployment gets the remaining time instead.
  if (state.elapsedMs + delayMs > state.totalBudgetMs) return giveUp(failure, "over-time-budget", state);
  return { kind: "retry", delayMs, reason: "backoff" };
}

/**
 * Stops on this deployment: fail over when the table says another one may succeed (or,
 * for a prompt too long for this model, when the alias opts in), else fail.
 */
function giveUp(failure: FailureClass, reason: GiveUpReason, state: RetryState): RetryDecision {
  const failover = failure.failover || (failure.contextLength && state.fallbackOnContextLength === true);
  return failover ? failovers[reason] : fails[reason];
}

// Give-up decisions carry no per-call data, so they are shared frozen constants.
function constants<K extends "failover" | "fail">(kind: K) {
  const of = (reason: GiveUpReason) => Object.freeze({ kind, reason });
  return {
    "not-retryable": of("not-retryable"),
    "attempts-exhausted": of("attempts-exhausted"),
    "retry-after-too-long": of("retry-after-too-long"),
    "over-time-budget": of("over-time-budget"),
  } as const;
}
const failovers = constants("failover");
const fails = constants("fail");
const failNotUpstream: RetryDecision = Object.freeze({ kind: "fail", reason: "not-upstream" });
