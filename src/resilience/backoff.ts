/** Backoff shape: the first retry waits up to `initialMs`, each next one up to twice that, never over `maxMs`. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * How long to wait before retry number `attempt` (1 = the first retry): exponential backoff
 * with FULL jitter, `random() × min(maxMs, initialMs × 2^(attempt-1))`.
 *
 * Why full jitter: when a provider hiccups, every in-flight call fails at the same moment; a
 * delay drawn uniformly from [0, ceiling) spreads their retries over the whole window instead
 * of sending them back in one synchronised wave (AWS "Exponential Backoff and Jitter").
 * `random` is injected so tests are exact.
 */
export function backoffDelayMs(
  attempt: number,
  { initialMs, maxMs }: BackoffOptions,
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`backoff attempt must be an integer >= 1, got ${attempt}`);
  }
  // The exponent is clamped so a huge attempt number cannot make 2^n Infinity
  // (0 × Infinity would be NaN); 2^52 already dwarfs any sane maxMs
  // (backoff.test.ts "stays finite for huge attempt numbers").
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 52));
  return random() * ceiling;
}
