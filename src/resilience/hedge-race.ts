import { Code, ConnectError } from "@connectrpc/connect";
import type { Attempt } from "./attempt.js";

/** The attempt that won and what it opened (its answer, or its stream's first token). */
export interface Winner<T> {
  readonly attempt: Attempt<T>;
  readonly opened: T;
}

export interface HedgeRace<T> {
  readonly first: Attempt<T>;
  /** Starts the hedge on the next deployment; undefined when it cannot start (open, at its limit). */
  startSecond(): Attempt<T> | undefined;
  readonly delayMs: number;
  /** The caller's signal: a breaker is never charged for the caller's own cancel. */
  readonly signal: AbortSignal;
  /** Closes what a loser opened after it lost (a stream's upstream request). */
  discard(value: T): Promise<unknown>;
  /** Ends an attempt whose answer the caller will not get (Attempts.finish). */
  finish(attempt: Attempt<T>, failure: unknown, callerSignal: AbortSignal): void;
}

/**
 * Hedging: when the first attempt has produced no token after `delayMs`, a second one
 * starts on another deployment; the first to produce a token wins and the other is
 * aborted upstream at once. Resolves with the winner, or rejects with the first
 * attempt's failure when both fail.
 */
export async function raceHedged<T>(race: HedgeRace<T>): Promise<Winner<T>> {
  const { first, signal, finish } = race;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"hedge">((resolve) => {
    timer = setTimeout(() => resolve("hedge"), race.delayMs);
  });
  const firstOutcome = outcomeOf(first);
  const early = await Promise.race([firstOutcome, timeout]);
  clearTimeout(timer);
  if (early !== "hedge") {
    if (early.opened !== undefined) return { attempt: first, opened: early.opened };
    finish(first, early.error, signal);
    throw early.error;
  }
  const second = race.startSecond();
  if (second === undefined) {
    const outcome = await firstOutcome;
    if (outcome.opened !== undefined) return { attempt: first, opened: outcome.opened };
    finish(first, outcome.error, signal);
    throw outcome.error;
  }
  const secondOutcome = outcomeOf(second);
  const winner = await Promise.race([firstOutcome, secondOutcome]);
  const other = winner.attempt === first ? secondOutcome : firstOutcome;
  const otherAttempt = winner.attempt === first ? second : first;
  if (winner.opened !== undefined) {
    // The loser is cut at once (its upstream request aborted), then cleaned up.
    otherAttempt.attemptSignal.abort(new ConnectError("hedged attempt lost the race", Code.Canceled));
    void other.then(async (outcome) => {
      if (outcome.opened !== undefined) await race.discard(outcome.opened).catch(() => undefined);
      finish(otherAttempt, undefined, signal);
    });
    return { attempt: winner.attempt, opened: winner.opened };
  }
  finish(winner.attempt, winner.error, signal);
  const rest = await other;
  if (rest.opened !== undefined) return { attempt: otherAttempt, opened: rest.opened };
  finish(otherAttempt, rest.error, signal);
  throw first === winner.attempt ? winner.error : rest.error;
}

interface Outcome<T> {
  readonly attempt: Attempt<T>;
  readonly opened: T | undefined;
  readonly error: unknown;
}

function outcomeOf<T>(attempt: Attempt<T>): Promise<Outcome<T>> {
  return attempt.opening.then(
    (opened) => ({ attempt, opened, error: undefined }),
    (error: unknown) => ({ attempt, opened: undefined, error }),
  );
}
