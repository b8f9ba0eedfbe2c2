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
  /** Restarts the idle timer: an event arrived. */
  eventArrived(): void;
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
    this.phase = firstTokenMs === undefined ? undefined : setTimeout(expire, firstTokenMs, this, `no first token within ${firstTokenMs} ms`);
  }

  firstEventArrived(): void {
    if (this.first) return;
    this.first = true;
    if (this.phase !== undefined) clearTimeout(this.phase);
    const { idleMs } = this.timeouts;
    this.phase = idleMs === undefined ? undefined : setTimeout(expire, idleMs, this, `stream idle for ${idleMs} ms`);
  }

  eventArrived(): void {
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
