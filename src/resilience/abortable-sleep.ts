import { abortError } from "../errors/abort-error.js";

/**
 * Waits `ms` milliseconds unless `signal` aborts first, in which case it rejects at once with
 * `abortError(signal)` — the caller's own ConnectError reason when it is one, else CANCELLED.
 * Backoff waits observe the same signal as the attempts: a caller who hangs up
 * or hits its deadline must not keep a retry alive.
 *
 * Leaves nothing behind either way: resolving removes the abort listener, aborting clears
 * the timer (abortable-sleep.test.ts "leaves no listener or timer"). A long-lived signal
 * (a server-wide shutdown signal, say) would otherwise collect one listener per backoff.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
