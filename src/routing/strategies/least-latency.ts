import type { Candidate, Clock, OutcomeSample, SelectionStrategy } from "./strategy.js";
import { countPositive, partitionByWeight } from "./weighted-order.js";

export interface LeastLatencyOptions {
  /**
   * EWMA smoothing in (0, 1]: the weight of the newest sample. 0.3 follows a real shift
   * within a handful of calls while one slow outlier moves the estimate by only 30 %.
   */
  readonly ewmaAlpha?: number;
  /**
   * A candidate with no sample, or whose newest sample is older than this, is explored:
   * put first for one call so it gets measured (a new deployment, or one that was slow
   * and may have recovered — greedy ordering would otherwise never try it again).
   * At most one exploring call per candidate per interval, so a burst does not herd onto
   * an unmeasured deployment. A sample arriving for a stale estimate replaces it rather than
   * being blended in. Default 30 s.
   */
  readonly exploreAfterMs?: number;
  /**
   * A failed attempt counts as a sample of max(this, its measured time), blended in with
   * the same alpha. With the defaults one failure lifts a 500 ms deployment to
   * 0.3 × 10 000 + 0.7 × 500 = 3 350 ms — behind healthy peers — and each later success
   * removes 30 % of the excess, so a flapping deployment sinks and a recovered one climbs
   * back. (A fast 500 must not look like a fast deployment, hence the floor.) Default 10 s.
   */
  readonly failurePenaltyMs?: number;
}

interface Estimate {
  /** EWMA in ms; NaN until the first sample. */
  ewma: number;
  /** Clock time of the newest sample; -Infinity when none. */
  sampledAt: number;
  /** Clock time this candidate was last put first to explore it; -Infinity when never. */
  exploredAt: number;
}

/**
 * Least latency: orders candidates by an EWMA of time to first token (streams) or latency
 * (unary), fastest first; unmeasured and stale candidates are explored first, one call
 * at a time (see `exploreAfterMs`). Zero-weight candidates stay last (fail-over only).
 *
 * Greedy by design: the fastest deployment takes all traffic until it slows down. Use
 * `p2c` when load, not latency, should decide.
 */
export function createLeastLatencyStrategy(options: LeastLatencyOptions = {}, deps: { now?: Clock } = {}): SelectionStrategy {
  const alpha = options.ewmaAlpha ?? 0.3;
  const exploreAfterMs = options.exploreAfterMs ?? 30_000;
  const failurePenaltyMs = options.failurePenaltyMs ?? 10_000;
  if (!(alpha > 0 && alpha <= 1)) throw new Error(`least-latency: ewmaAlpha must be in (0, 1], got ${alpha}`);
  if (!(exploreAfterMs > 0)) throw new Error(`least-latency: exploreAfterMs must be > 0, got ${exploreAfterMs}`);
  if (!(failurePenaltyMs >= 0)) throw new Error(`least-latency: failurePenaltyMs must be >= 0, got ${failurePenaltyMs}`);
  const now = deps.now ?? (() => performance.now());
  const estimates = new Map<string, Estimate>();

  function estimateOf(key: string): Estimate {
    let estimate = estimates.get(key);
    if (estimate === undefined) {
      estimate = { ewma: Number.NaN, sampledAt: -Infinity, exploredAt: -Infinity };
      estimates.set(key, estimate);
    }
    return estimate;
  }

  /** Sort score: measured EWMA; unmeasured ranks after every measured candidate. */
  function score(candidate: Candidate): number {
    const ewma = estimates.get(candidate.key)?.ewma ?? Number.NaN;
    return Number.isNaN(ewma) ? Infinity : ewma;
  }

  return {
    order(candidates: readonly Candidate[]): Candidate[] {
      const positive = countPositive(candidates);
      const out = partitionByWeight(candidates);
      if (positive <= 1) return out;
      // Insertion sort of the positive prefix by score: stable (ties keep config order),
      // no allocation, and k is a handful.
      for (let i = 1; i < positive; i++) {
        const item = out[i]!;
        const s = score(item);
        let j = i - 1;
        while (j >= 0 && score(out[j]!) > s) {
          out[j + 1] = out[j]!;
          j--;
        }
        out[j + 1] = item;
      }
      // Exploration: an unmeasured candidate (in config order) before a stale one (fastest
      // first); it moves to the front, everything else keeps its place behind it.
      const t = now();
      let unmeasured = -1;
      let stale = -1;
      for (let i = 0; i < positive; i++) {
        const estimate = estimateOf(out[i]!.key);
        if (t - estimate.sampledAt < exploreAfterMs || t - estimate.exploredAt < exploreAfterMs) continue;
        if (Number.isNaN(estimate.ewma)) {
          unmeasured = i;
          break;
        }
        if (stale < 0) stale = i;
      }
      const explore = unmeasured >= 0 ? unmeasured : stale;
      if (explore >= 0) {
        const item = out[explore]!;
        estimateOf(item.key).exploredAt = t;
        for (let j = explore; j > 0; j--) out[j] = out[j - 1]!;
        out[0] = item;
      }
      return out;
    },

    observe(key: string, sample: OutcomeSample): void {
      const measured = sample.ttftMs ?? sample.latencyMs;
      let value: number;
      if (sample.ok) {
        if (measured === undefined || !(measured >= 0)) return; // nothing to learn
        value = measured;
      } else {
        value = measured !== undefined && measured > failurePenaltyMs ? measured : failurePenaltyMs;
      }
      const estimate = estimateOf(key);
      const t = now();
      // A stale estimate says nothing about now: the new sample replaces it instead of being
      // blended in, so one good probe brings a recovered deployment straight back (and one
      // failed probe sends it back down). Test: "re-explores a stale candidate".
      const fresh = !Number.isNaN(estimate.ewma) && t - estimate.sampledAt < exploreAfterMs;
      estimate.ewma = fresh ? alpha * value + (1 - alpha) * estimate.ewma : value;
      estimate.sampledAt = t;
    },
  };
}
