import type { Candidate, RandomSource, SelectionStrategy } from "./strategy.js";
import { weightedOrder } from "./weighted-order.js";

/**
 * Power of two choices (P2C): draw two distinct candidates at random by weight and try
 * the one with fewer calls in flight first. Two random choices avoid both herding (every
 * caller picking the same "least loaded" deployment from stale data) and the load blind
 * spot of plain random — max load drops from O(log n / log log n) to O(log log n).
 *
 * Order: the less-loaded of the two, then the other, then the rest in weighted random
 * order, zero-weight last. Ties keep the random draw order, so weights still decide.
 *
 * In-flight counts are per process. `begin(key)` when an attempt starts, `end(key)`
 * exactly once when it settles (success, error or cancel); unknown or extra `end` calls
 * are ignored rather than going negative.
 */
export function createPowerOfTwoChoicesStrategy(deps: { random?: RandomSource } = {}): SelectionStrategy {
  const random = deps.random ?? Math.random;
  const inFlight = new Map<string, number>();
  return {
    order(candidates: readonly Candidate[]): Candidate[] {
      // A weighted permutation's first two entries are exactly two distinct weighted draws.
      const out = weightedOrder(candidates, random);
      if (out.length >= 2 && out[1]!.weight > 0) {
        const a = out[0]!;
        const b = out[1]!;
        if ((inFlight.get(b.key) ?? 0) < (inFlight.get(a.key) ?? 0)) {
          out[0] = b;
          out[1] = a;
        }
      }
      return out;
    },
    begin(key: string): void {
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    },
    end(key: string): void {
      const count = inFlight.get(key);
      if (count === undefined) return;
      // Deleting at zero keeps the map as small as the set of busy deployments.
      if (count <= 1) inFlight.delete(key);
      else inFlight.set(key, count - 1);
    },
  };
}
