import type { Candidate, SelectionStrategy } from "./strategy.js";
import { countPositive, partitionByWeight } from "./weighted-order.js";

/**
 * Round robin: each call starts one further along the list and wraps around, so N
 * deployments each serve every N-th call and fail over to the next ones in turn.
 *
 * Positive weights are ignored (use `weighted` for uneven shares); weight 0 keeps its
 * config meaning — fail-over only — so zero-weight candidates stay at the end and are
 * not rotated into first place. The counter is per strategy instance (one per alias) and
 * per process: replicas rotate independently, which is fine for spreading load.
 */
export function createRoundRobinStrategy(): SelectionStrategy {
  let next = 0;
  return {
    order(candidates: readonly Candidate[]): Candidate[] {
      const positive = countPositive(candidates);
      const out = partitionByWeight(candidates);
      if (positive <= 1) return out;
      const start = next % positive;
      // Wrap well before 2^53 so the modulo stays exact forever.
      next = next >= 0x3fffffff ? 0 : next + 1;
      if (start === 0) return out;
      rotateLeft(out, positive, start);
      return out;
    },
  };
}

/** Rotates out[0..length) left by `by` in place (three reversals: no extra array). */
function rotateLeft(out: Candidate[], length: number, by: number): void {
  reverse(out, 0, by - 1);
  reverse(out, by, length - 1);
  reverse(out, 0, length - 1);
}

function reverse(out: Candidate[], from: number, to: number): void {
  for (let i = from, j = to; i < j; i++, j--) {
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
}
