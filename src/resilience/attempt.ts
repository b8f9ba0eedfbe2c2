import type { Candidate } from "../routing/candidate.js";
import type { CallPlanner } from "../routing/call-plan.js";
import { createAttemptSignal, type AttemptSignal } from "./attempt-signal.js";
import type { BreakerRegistry } from "./breaker-registry.js";
import type { BreakerTicket } from "./deployment-breaker.js";
import type { CallProgress } from "./call-progress.js";
import type { InFlightLimiter } from "./in-flight-limiter.js";
import { unobservedAttempt, type AttemptObservation, type CallTelemetry } from "../telemetry/call-telemetry.js";

/**
 * An attempt in flight: its own signal, breaker ticket and strategy hooks; `opening`
 * settles with the answer (unary) or the stream's first token (streams).
 */
export interface Attempt<T> {
  readonly candidate: Candidate;
  readonly attemptSignal: AttemptSignal;
  readonly ticket: BreakerTicket;
  readonly opening: Promise<T>;
  readonly hedged: boolean;
  /** performance.now() when it started. */
  readonly started: number;
  /** Its span and metrics; `end` is called exactly once, by `finish` or by whoever delivered its answer. */
  readonly observation: AttemptObservation;
}

export interface AttemptsDeps {
  readonly breakers: BreakerRegistry;
  readonly limiter: InFlightLimiter;
  /** Strategy feedback: in-flight attempts per deployment. */
  readonly planner?: Pick<CallPlanner, "begin" | "end"> | undefined;
  readonly telemetry?: CallTelemetry | undefined;
}

/** Starting and ending attempts: each takes an in-flight slot, a breaker ticket and strategy hooks, and gives them back exactly once. */
export interface Attempts {
  /**
   * Starts an attempt on `candidate`, or returns undefined (counted in `progress`) when it
   * is at its in-flight limit or its circuit is open. `own`: the attempt gets its own
   * signal (timeouts, hedging) rather than the caller's.
   */
  start<T>(
    candidate: Candidate,
    signal: AbortSignal,
    progress: CallProgress,
    own: boolean,
    hedged: boolean,
    run: (attemptSignal: AttemptSignal, traceparent: string | undefined) => Promise<T>,
  ): Attempt<T> | undefined;
  /** Ends an attempt whose answer the caller will not get (failed, or lost a hedge race). */
  finish(attempt: Attempt<unknown>, failure: unknown, callerSignal: AbortSignal): void;
  /** Releases what `start` took besides the breaker ticket (exactly once per attempt). */
  end(attempt: Attempt<unknown>): void;
}

export function createAttempts(deps: AttemptsDeps): Attempts {
  const { breakers, limiter, planner, telemetry } = deps;

  function end(attempt: Attempt<unknown>): void {
    const { key, maxInFlight } = attempt.candidate.deployment;
    limiter.release(key, maxInFlight);
    planner?.end(key);
    attempt.attemptSignal.dispose();
  }

  return {
    start(candidate, signal, progress, own, hedged, run) {
      const { key, maxInFlight } = candidate.deployment;
      const record = progress.record;
      if (!limiter.tryAcquire(key, maxInFlight)) {
        progress.skippedBusy++;
        if (record !== undefined) telemetry?.event(record, "in_flight_limit_skip", key);
        return undefined;
      }
      const ticket = breakers.get(key).begin();
      if (ticket === undefined) {
        limiter.release(key, maxInFlight);
        progress.skippedOpen++;
        if (record !== undefined) telemetry?.event(record, "breaker_open_skip", key);
        return undefined;
      }
      progress.attempts++;
      if (record !== undefined) record.attempts = progress.attempts;
      const attemptSignal = createAttemptSignal(signal, candidate.deployment.timeouts, candidate.deployment.provider.name, own);
      planner?.begin(key);
      const started = performance.now();
      const observation =
        record === undefined || telemetry === undefined
          ? unobservedAttempt
          : telemetry.attempt(record, candidate.deployment.target, { alias: candidate.route.alias, hedged });
      // An attempt's own timeout is its failure, whatever the adapter reported on abort. An
      // attempt on the caller's own signal has no timeout of its own: nothing to wrap.
      const opened = run(attemptSignal, observation.traceparent);
      const opening =
        attemptSignal.signal === signal
          ? opened
          : opened.catch((err: unknown) => {
              throw attemptSignal.timedOut ?? err;
            });
      return { candidate, attemptSignal, ticket, opening, hedged, started, observation };
    },

    finish(attempt, failure, callerSignal) {
      if (failure === undefined) {
        attempt.ticket.release();
        attempt.observation.end("superseded");
      } else {
        settle(attempt.ticket, failure, callerSignal);
        attempt.observation.end(callerSignal.aborted ? "cancelled" : "error", failure);
      }
      end(attempt);
    },

    end,
  };
}

/** Tells the breaker how an attempt ended: the caller's own cancel or deadline never counts. */
export function settle(ticket: BreakerTicket, err: unknown, callerSignal: AbortSignal): void {
  if (callerSignal.aborted) ticket.release();
  else ticket.failure(err);
}
