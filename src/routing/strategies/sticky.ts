import type { Candidate, RandomSource, SelectionContext, SelectionStrategy } from "./strategy.js";
import { fmix32, fnv1a } from "./hash.js";
import { partitionByWeight, weightedOrder } from "./weighted-order.js";

/**
 * Sticky: the same `metadata[stickyKey]` (an end user, a session) always gets the same
 * deployment first, so the upstream's prompt cache for that conversation stays warm.
 *
 * Weighted rendezvous (highest-random-weight) hashing: each candidate scores
 * `weight / -ln(u)` where u ∈ (0, 1) is a hash of (value, candidate key); the highest
 * score goes first and the whole order is by score, so the fail-over order is sticky too.
 * Why rendezvous rather than a ring: no ring to build or rebuild, exact weights
 * (P(first) = weight / total, since -ln(u)/w is exponential with rate w), and removing a
 * deployment moves only the values that had it first — every other score is unchanged.
 * Adding one takes only its own share. O(k) hashes per call for k candidates, with a small
 * non-cryptographic hash (hash.ts): node:crypto's sha1 on the same pairs cost far more.
 *
 * A missing or empty value falls back to weighted random (nothing to stick to).
 * Zero-weight candidates stay last, in the order given.
 */
export function createStickyStrategy(options: { stickyKey: string }, deps: { random?: RandomSource } = {}): SelectionStrategy {
  const { stickyKey } = options;
  if (typeof stickyKey !== "string" || stickyKey.length === 0) throw new Error("sticky: stickyKey must be a non-empty string");
  const random = deps.random ?? Math.random;
  // Reused per call: order() is synchronous, so one scratch buffer per strategy is safe.
  let scores = new Float64Array(8);

  return {
    order(candidates: readonly Candidate[], context: SelectionContext): Candidate[] {
      const value = Object.hasOwn(context.metadata, stickyKey) ? context.metadata[stickyKey] : undefined;
      if (value === undefined || value === "") return weightedOrder(candidates, random);
      const out = partitionByWeight(candidates);
      let positive = 0;
      while (positive < out.length && out[positive]!.weight > 0) positive++;
      if (positive <= 1) return out;
      if (scores.length < positive) scores = new Float64Array(positive * 2);
      // The separator keeps ("ab", "c") and ("a", "bc") apart.
      const seed = fnv1a("\u0000", fnv1a(value));
      for (let i = 0; i < positive; i++) scores[i] = rendezvousScore(seed, out[i]!);
      // Insertion sort, highest score first, moving scores alongside candidates.
      for (let i = 1; i < positive; i++) {
        const item = out[i]!;
        const s = scores[i]!;
        let j = i - 1;
        while (j >= 0 && scores[j]! < s) {
          out[j + 1] = out[j]!;
          scores[j + 1] = scores[j]!;
          j--;
        }
        out[j + 1] = item;
        scores[j + 1] = s;
      }
      return out;
    },
  };
}

/** 2^-32: maps a 32-bit hash to the unit interval. */
const unit = 1 / 4_294_967_296;

/** Weighted rendezvous score of one candidate for a hashed value; higher wins. */
export function rendezvousScore(seed: number, candidate: Candidate): number {
  const h = fmix32(fnv1a(candidate.key, seed));
  // +0.5 keeps u strictly inside (0, 1): ln(0) and ln(1) would give ±Infinity scores.
  const u = (h + 0.5) * unit;
  return candidate.weight / -Math.log(u);
}
