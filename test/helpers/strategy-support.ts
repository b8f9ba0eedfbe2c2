import type { Candidate, Clock } from "../../src/routing/strategies/strategy.js";

/**
 * Shared by the strategy tests (not a .test.ts file so vitest does not run it).
 * Builds frozen candidate lists, so any strategy that mutated its input would throw.
 */
export function candidates(weights: Record<string, number>): readonly Candidate[] {
  return Object.freeze(Object.entries(weights).map(([key, weight]) => Object.freeze({ key, weight })));
}

/** Keys of an ordering, for readable assertions. */
export function keys(order: readonly Candidate[]): string[] {
  return order.map((c) => c.key);
}

/** How often each key came first over `n` calls. */
export function firstCounts(n: number, pick: () => readonly Candidate[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const key = pick()[0]!.key;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/**
 * Tolerance for a binomial count: `sigmas` standard deviations of n·p·(1−p). 4σ makes a
 * correct implementation fail with probability ~6e-5 per check whatever the seed, while a
 * wrong share (say 2 % instead of 1 % of 10 000) is off by ~10σ and cannot pass.
 */
export function binomialTolerance(n: number, p: number, sigmas = 4): number {
  return sigmas * Math.sqrt(n * p * (1 - p));
}

/** A hand-driven clock for tests that need time without sleeping. */
export function manualClock(start = 0): Clock & { advance(ms: number): void } {
  let t = start;
  const clock = (() => t) as Clock & { advance(ms: number): void };
  clock.advance = (ms: number) => {
    t += ms;
  };
  return clock;
}
