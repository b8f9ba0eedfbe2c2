import type { RandomSource } from "./strategy.js";

/**
 * Mulberry32: a tiny seeded PRNG with a full 2^32 period and good equidistribution, so
 * distribution tests (and bench simulations) are reproducible run to run. Not for secrets.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
