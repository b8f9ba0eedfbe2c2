import type { Candidate, RandomSource, SelectionStrategy } from "./strategy.js";
import { weightedOrder } from "./weighted-order.js";

/**
 * Weighted random: the first candidate is drawn with probability weight / total, the
 * fail-over order is drawn the same way from the rest (without replacement). Weight 0
 * is never first but still a last-resort fail-over.
 *
 * This is also the ramp for a new deployment: give it weight 1 beside 99, then 5/95,
 * 20/80, 100 — each step a config reload, no code. Stateless, so every replica agrees
 * statistically without coordination.
 */
export function createWeightedRandomStrategy(deps: { random?: RandomSource } = {}): SelectionStrategy {
  const random = deps.random ?? Math.random;
  return {
    order(candidates: readonly Candidate[]): Candidate[] {
      return weightedOrder(candidates, random);
    },
  };
}
