/** Config `resilience.retryBudget`. */
export interface RetryBudgetOptions {
  /** Retries may be at most this fraction of the requests seen in the window (0.2 = 20 %). */
  readonly ratio: number;
  /** Floor so low traffic can still retry: `minRetriesPerSecond × windowMs / 1000` per window. */
  readonly minRetriesPerSecond: number;
  /** Sliding window length. */
  readonly windowMs: number;
  /** Ring size; the window slides in steps of `windowMs / buckets`. Default 10. */
  readonly buckets?: number;
}

/** A snapshot for metrics and logs. */
export interface RetryBudgetStats {
  /** Requests recorded in the current window. */
  readonly requests: number;
  /** Retries granted in the current window. */
  readonly retries: number;
  /** Retries the window allows in total right now (ratio × requests + floor). */
  readonly limit: number;
  /** Retries refused since the budget was created. */
  readonly denied: number;
}

export interface RetryBudget {
  /** Counts one caller request. Call once per request, NOT per attempt: retries must not fund retries. */
  recordRequest(): void;
  /** Takes one retry from the budget; false means "do not retry, fail over or fail now". */
  tryAcquireRetry(): boolean;
  readonly stats: RetryBudgetStats;
}

// Keeps e.g. 0.29 × 100 = 28.999999999999996 from costing a retry the ratio allows
// (retry-budget.test.ts "does not lose a retry to floating point").
const epsilon = 1e-9;

/**
 * A process-wide retry budget (Finagle's RetryBudget, gRPC's retry throttling): during an
 * outage every call fails and wants to retry, and per-call attempt limits alone would
 * multiply load on a provider that is already struggling. Here retries in the sliding
 * window may be at most `ratio × requests + minRetriesPerSecond × windowMs / 1000`.
 *
 * Counts live in a fixed ring of buckets (typed arrays allocated once), so recording and
 * acquiring are O(buckets) worst case, O(1) usually, and allocation-free on the hot path.
 * `now` is injected so tests drive time without timers; there are no timers at all.
 */
export function createRetryBudget(options: RetryBudgetOptions, now: () => number = Date.now): RetryBudget {
  const { ratio, minRetriesPerSecond, windowMs, buckets = 10 } = options;
  check("ratio", ratio, Number.isFinite(ratio) && ratio >= 0);
  check("minRetriesPerSecond", minRetriesPerSecond, Number.isFinite(minRetriesPerSecond) && minRetriesPerSecond >= 0);
  check("windowMs", windowMs, Number.isFinite(windowMs) && windowMs > 0);
  check("buckets", buckets, Number.isInteger(buckets) && buckets >= 1);

  const bucketMs = windowMs / buckets;
  const floor = (minRetriesPerSecond * windowMs) / 1000;
  const requestCounts = new Float64Array(buckets);
  const retryCounts = new Float64Array(buckets);
  let requests = 0;
  let retries = 0;
  let denied = 0;
  /** Absolute bucket number (time / bucketMs) that `requestCounts[tick % buckets]` holds. */
  let tick = Math.floor(now() / bucketMs);

  /** Expires the buckets that slid out of the window since the last call. */
  function advance(): void {
    const current = Math.floor(now() / bucketMs);
    // A clock that steps back (NTP) keeps filling the current bucket rather than reusing
    // old slots out of order (retry-budget.test.ts "tolerates the clock stepping back").
    if (current <= tick) return;
    if (current - tick >= buckets) {
      requestCounts.fill(0);
      retryCounts.fill(0);
      requests = 0;
      retries = 0;
    } else {
      for (let t = tick + 1; t <= current; t++) {
        const slot = t % buckets;
        requests -= requestCounts[slot]!;
        retries -= retryCounts[slot]!;
        requestCounts[slot] = 0;
        retryCounts[slot] = 0;
      }
    }
    tick = current;
  }

  function limit(): number {
    return ratio * requests + floor;
  }

  return {
    recordRequest() {
      advance();
      requestCounts[tick % buckets]!++;
      requests++;
    },
    tryAcquireRetry() {
      advance();
      // Granted retries stay ≤ limit: the one asked for must fit too.
      if (retries + 1 > limit() + epsilon) {
        denied++;
        return false;
      }
      retryCounts[tick % buckets]!++;
      retries++;
      return true;
    },
    get stats(): RetryBudgetStats {
      advance();
      return { requests, retries, limit: limit(), denied };
    },
  };
}

function check(field: string, value: number, ok: boolean): void {
  if (!ok) throw new RangeError(`retryBudget.${field}: invalid value ${value}`);
}
