import { ConnectError } from "@connectrpc/connect";
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
    return {
      signal: caller,
      firstEventArrived() {},
      eventArrived() {},
      abort() {},
      dispose() {},
      timedOut: undefined,
    };
  }
  const controller = new AbortController();
  let timedOut: UpstreamError | undefined;
  const onCallerAbort = (): void => controller.abort(caller.reason);
  if (caller.aborted) controller.abort(caller.reason);
  else caller.addEventListener("abort", onCallerAbort, { once: true });

  const expire = (what: string) => (): void => {
    timedOut = new UpstreamError({
      failure: failures.timeout,
      provider,
      message: `provider ${provider} attempt timed out: ${what}`,
    });
    controller.abort(timedOut);
  };
  const total = totalMs === undefined ? undefined : setTimeout(expire(`no answer within ${totalMs} ms`), totalMs);
  let phase: NodeJS.Timeout | undefined =
    firstTokenMs === undefined ? undefined : setTimeout(expire(`no first token within ${firstTokenMs} ms`), firstTokenMs);
  let first = false;

  return {
    signal: controller.signal,
    firstEventArrived() {
      if (first) return;
      first = true;
      if (phase !== undefined) clearTimeout(phase);
      phase = idleMs === undefined ? undefined : setTimeout(expire(`stream idle for ${idleMs} ms`), idleMs);
    },
    eventArrived() {
      if (phase !== undefined && first) phase.refresh();
    },
    abort(reason) {
      controller.abort(reason instanceof ConnectError ? reason : reason);
    },
    dispose() {
      if (total !== undefined) clearTimeout(total);
      if (phase !== undefined) clearTimeout(phase);
      caller.removeEventListener("abort", onCallerAbort);
    },
    get timedOut() {
      return timedOut;
    },
  };
}
