import { UpstreamError } from "../errors/gateway-error.js";
import { failures } from "../errors/failure-table.js";
import type { AttemptTimeouts } from "../config/schema.js";

/**
 * The signal of one upstream attempt: the caller's signal, plus — only when the deployment
 * sets per-attempt timeouts or the call is hedged — its own controller, so one attempt can
 * time out or lose a hedge race without cancelling the caller. Without either, the caller's
 * signal is used as is (no allocation on the common path).
 */
export interface AttemptSignal {
  readonly signal: AbortSignal;
  /** Arms the time-to-first-token limit (before the first event) or the idle limit (after). */
  firstEventArrived(): void;
  /** An event arrived: while the caller holds it, a slow caller is not the upstream being idle. */
  eventArrived(): void;
  /** The next event is asked for: the idle limit runs (again) from now until it arrives. */
  awaitingEvent(): void;
  /** Aborts this attempt only (hedge loser). */
  abort(reason: unknown): void;
  /** Releases timers and the link to the caller's signal. */
  dispose(): void;
  /** The timeout error if this attempt's own limit fired, else undefined. */
  readonly timedOut: UpstreamError | undefined;
}

export function createAttemptSignal(
  caller: AbortSignal,
  timeouts: AttemptTimeouts,
  provider: string,
  own: boolean,
): AttemptSignal {
  const { firstTokenMs, idleMs, totalMs } = timeouts;
  if (!own && firstTokenMs === undefined && idleMs === undefined && totalMs === undefined) {
    return new CallerAttemptSignal(caller);
  }
  return new OwnAttemptSignal(caller, timeouts, provider);
}

/** The common attempt: the caller's own signal, nothing to arm or release. */
class CallerAttemptSignal implements AttemptSignal {
  readonly timedOut = undefined;
  constructor(readonly signal: AbortSignal) {}
  firstEventArrived(): void {}
  eventArrived(): void {}
  awaitingEvent(): void {}
  abort(): void {}
  dispose(): void {}
}

/** An attempt with its own controller (per-attempt timeouts, or a hedged call). A class: no per-attempt accessor definitions. */
class OwnAttemptSignal implements AttemptSignal {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  timedOut: UpstreamError | undefined = undefined;
  private readonly total: NodeJS.Timeout | undefined;
  private phase: NodeJS.Timeout | undefined;
  private first = false;
  /** An event is with the caller, the next one not asked for yet: the idle limit does not fire. */
  holding = false;
  private readonly onCallerAbort = (): void => this.controller.abort(this.caller.reason);

  constructor(
    private readonly caller: AbortSignal,
    private readonly timeouts: AttemptTimeouts,
    private readonly provider: string,
  ) {
    const { firstTokenMs, totalMs } = timeouts;
    if (caller.aborted) this.controller.abort(caller.reason);
    else caller.addEventListener("abort", this.onCallerAbort, { once: true });
    this.total = totalMs === undefined ? undefined : setTimeout(expire, totalMs, this, `no answer within ${totalMs} ms`);
    this.phase =
      firstTokenMs === undefined ? undefined : setTimeout(expire, firstTokenMs, this, `no first token within ${firstTokenMs} ms`);
  }

  firstEventArrived(): void {
    if (this.first) return;
    this.first = true;
    this.holding = true;
    if (this.phase !== undefined) clearTimeout(this.phase);
    const { idleMs } = this.timeouts;
    this.phase = idleMs === undefined ? undefined : setTimeout(expireIdle, idleMs, this, `stream idle for ${idleMs} ms`);
  }

  eventArrived(): void {
    this.holding = true;
  }

  awaitingEvent(): void {
    this.holding = false;
    // Also re-arms a timer that lapsed while the caller held an event.
    if (this.phase !== undefined && this.first) this.phase.refresh();
  }

  abort(reason: unknown): void {
    this.controller.abort(reason);
  }

  dispose(): void {
    if (this.total !== undefined) clearTimeout(this.total);
    if (this.phase !== undefined) clearTimeout(this.phase);
    this.caller.removeEventListener("abort", this.onCallerAbort);
  }

  /** A limit fired: this attempt ends with UPSTREAM_TIMEOUT, the caller's signal stays as it is. */
  expire(what: string): void {
    this.timedOut = new UpstreamError({
      failure: failures.timeout,
      provider: this.provider,
      message: `provider ${this.provider} attempt timed out: ${what}`,
    });
    this.controller.abort(this.timedOut);
  }
}

function expire(attempt: OwnAttemptSignal, what: string): void {
  attempt.expire(what);
}

function expireIdle(attempt: OwnAttemptSignal, what: string): void {
  if (!attempt.holding) attempt.expire(what);
}
