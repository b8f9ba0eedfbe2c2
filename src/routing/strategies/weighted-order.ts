import type { Candidate, RandomSource } from "./strategy.js";

/**
 * Shared by the weighted, P2C and sticky (fallback) strategies: a weighted random
 * permutation, i.e. weighted sampling *without replacement*. Position 0 is drawn with
 * probability weight/total; each later position is drawn from what remains, so the
 * fail-over order spreads a failing primary's traffic over the others by weight too.
 *
 * Zero-weight (or non-positive / NaN) candidates are never drawn: they follow all the
 * positive ones, in the order given — the "fail-over only" meaning of weight 0 in config.
 *
 * Cost: one output array, k random draws and O(k²) additions for k positive candidates
 * (k is a handful per alias, so this beats sorting random keys).
 */
export function weightedOrder(candidates: readonly Candidate[], random: RandomSource): Candidate[] {
  const out = partitionByWeight(candidates);
  const positive = countPositive(candidates);
  let total = 0;
  for (let i = 0; i < positive; i++) total += out[i]!.weight;
  for (let i = 0; i < positive - 1; i++) {
    let r = random() * total;
    // Floating-point drift can leave r just above the remaining sum: default to the last.
    let pick = positive - 1;
    for (let j = i; j < positive; j++) {
      r -= out[j]!.weight;
      if (r < 0) {
        pick = j;
        break;
      }
    }
    const chosen = out[pick]!;
    out[pick] = out[i]!;
    out[i] = chosen;
    total -= chosen.weight;
  }
  return out;
}

/** Number of candidates with a positive weight. */
export function countPositive(candidates: readonly Candidate[]): number {
  let n = 0;
  for (let i = 0; i < candidates.length; i++) if (candidates[i]!.weight > 0) n++;
  return n;
}

/**
 * A new array: positive-weight candidates first, then zero-weight ones, each group in
 * the order given (stable). The one allocation most strategies make per call.
 */
export function partitionByWeight(candidates: readonly Candidate[]): Candidate[] {
  const n = candidates.length;
  const out = new Array<Candidate>(n);
  let front = 0;
  for (let i = 0; i < n; i++) if (candidates[i]!.weight > 0) out[front++] = candidates[i]!;
  for (let i = 0; i < n; i++) if (!(candidates[i]!.weight > 0)) out[front++] = candidates[i]!;
  return out;
}
