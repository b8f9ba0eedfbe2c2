import type { Candidate, SelectionStrategy } from "./strategy.js";

/**
 * Ordered: as configured — the first serves, the rest are fail-overs in order. The
 * default, and the behaviour before strategies existed. Weights are ignored, so a
 * zero-weight first deployment still serves (the config author chose the order).
 */
export function createOrderedStrategy(): SelectionStrategy {
  return {
    order(candidates: readonly Candidate[]): Candidate[] {
      return candidates.slice();
    },
  };
}
