/**
 * Recent latencies per deployment and kind ("ttft" of streams, "latency" of unary calls)
 * and their quantiles — the hedge delay "this deployment's observed p95". A fixed ring
 * of the newest samples keeps memory bounded and follows shifts; the quantile is
 * recomputed lazily, at most once per `recomputeEvery` new samples, so a hot path that
 * asks on every call sorts rarely.
 */
export type LatencyKind = "ttft" | "latency";

export interface LatencyQuantilesOptions {
  /** Newest samples kept per deployment and kind. Default 256. */
  readonly windowSize?: number;
  /** Fewer samples than this: no estimate (the caller uses its configured default). Default 20. */
  readonly minSamples?: number;
  /** New samples between two recomputations of a cached quantile. Default 16. */
  readonly recomputeEvery?: number;
}

export interface LatencyQuantiles {
  record(key: string, kind: LatencyKind, ms: number): void;
  /** The `percentile` (0–100) of recent samples in ms, or undefined while too few were seen. */
  quantile(key: string, kind: LatencyKind, percentile: number): number | undefined;
  /** A configuration reload: forgets the samples of deployments not in `keys`; the others keep theirs. */
  retain(keys: ReadonlySet<string>): void;
}

interface Ring {
  readonly samples: Float64Array;
  /** Samples ever recorded (the next write goes to `total % size`). */
  total: number;
  /** Cached quantiles by percentile, with the `total` they were computed at. */
  readonly cached: Map<number, { value: number; at: number }>;
}

export function createLatencyQuantiles(options: LatencyQuantilesOptions = {}): LatencyQuantiles {
  const windowSize = options.windowSize ?? 256;
  const minSamples = options.minSamples ?? 20;
  const recomputeEvery = options.recomputeEvery ?? 16;
  if (!(Number.isInteger(windowSize) && windowSize > 0))
    throw new Error(`latency quantiles: windowSize must be a positive integer`);
  if (!(minSamples >= 1 && minSamples <= windowSize)) throw new Error(`latency quantiles: minSamples must be in [1, windowSize]`);
  // One map per kind, keyed by the deployment key itself: no key string built per sample.
  const ringsByKind: Record<LatencyKind, Map<string, Ring>> = { ttft: new Map(), latency: new Map() };

  return {
    record(key, kind, ms) {
      if (!Number.isFinite(ms) || ms < 0) return;
      const rings = ringsByKind[kind];
      let ring = rings.get(key);
      if (ring === undefined) {
        ring = { samples: new Float64Array(windowSize), total: 0, cached: new Map() };
        rings.set(key, ring);
      }
      ring.samples[ring.total % windowSize] = ms;
      ring.total++;
    },
    quantile(key, kind, percentile) {
      const ring = ringsByKind[kind].get(key);
      if (ring === undefined || ring.total < minSamples) return undefined;
      const cached = ring.cached.get(percentile);
      if (cached !== undefined && ring.total - cached.at < recomputeEvery) return cached.value;
      const count = Math.min(ring.total, windowSize);
      const sorted = ring.samples.slice(0, count).sort();
      // Nearest rank: the smallest sample with at least `percentile` % of samples at or below it.
      const rank = Math.min(count, Math.max(1, Math.ceil((percentile / 100) * count)));
      const value = sorted[rank - 1]!;
      ring.cached.set(percentile, { value, at: ring.total });
      return value;
    },
    retain(keys) {
      for (const rings of Object.values(ringsByKind)) for (const key of rings.keys()) if (!keys.has(key)) rings.delete(key);
    },
  };
}
