import { describe, expect, it } from "vitest";
import { createRetryBudget, type RetryBudgetOptions } from "./retry-budget.js";

/** A hand-driven clock: no timers anywhere. */
function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
    set(ms: number) {
      t = ms;
    },
  };
}

function acquire(budget: { tryAcquireRetry(): boolean }, times: number): number {
  let granted = 0;
  for (let i = 0; i < times; i++) if (budget.tryAcquireRetry()) granted++;
  return granted;
}

function record(budget: { recordRequest(): void }, times: number): void {
  for (let i = 0; i < times; i++) budget.recordRequest();
}

const noFloor: RetryBudgetOptions = { ratio: 0.2, minRetriesPerSecond: 0, windowMs: 10_000 };

describe("createRetryBudget", () => {
  it("allows retries up to ratio × requests in the window, then refuses", () => {
    const c = clock();
    const budget = createRetryBudget(noFloor, c.now);
    record(budget, 10);
    expect(acquire(budget, 5)).toBe(2);
    expect(budget.stats).toEqual({ requests: 10, retries: 2, limit: 2, denied: 3 });
  });

  it("refuses every retry with no floor and no traffic", () => {
    const budget = createRetryBudget(noFloor, clock().now);
    expect(budget.tryAcquireRetry()).toBe(false);
  });

  it("has a floor of minRetriesPerSecond × windowMs / 1000 so low traffic can still retry", () => {
    const c = clock();
    const budget = createRetryBudget({ ratio: 0.2, minRetriesPerSecond: 0.5, windowMs: 10_000 }, c.now);
    expect(budget.stats.limit).toBe(5);
    expect(acquire(budget, 10)).toBe(5);
    // The floor adds to the ratio: 10 requests buy 2 more.
    record(budget, 10);
    expect(acquire(budget, 10)).toBe(2);
    expect(budget.stats).toEqual({ requests: 10, retries: 7, limit: 7, denied: 13 });
  });

  it("lets one more request buy exactly the retry fraction it earns", () => {
    const budget = createRetryBudget({ ratio: 0.5, minRetriesPerSecond: 0, windowMs: 1_000 }, clock().now);
    budget.recordRequest();
    expect(budget.tryAcquireRetry()).toBe(false); // 0.5 retries available: not a whole one
    budget.recordRequest();
    expect(budget.tryAcquireRetry()).toBe(true);
    expect(budget.tryAcquireRetry()).toBe(false);
  });

  it("does not lose a retry to floating point (0.29 × 100 is 28.999…)", () => {
    const budget = createRetryBudget({ ratio: 0.29, minRetriesPerSecond: 0, windowMs: 1_000 }, clock().now);
    record(budget, 100);
    expect(acquire(budget, 40)).toBe(29);
  });

  it("slides: requests and retries expire bucket by bucket", () => {
    const c = clock(0);
    const budget = createRetryBudget(noFloor, c.now); // 10 buckets of 1 s
    record(budget, 10); // bucket 0
    c.advance(5_000);
    record(budget, 10); // bucket 5
    expect(acquire(budget, 10)).toBe(4);
    // At 10 s bucket 0 leaves the window: 10 requests remain, and the 4 retries (bucket 5) still count.
    c.set(10_000);
    expect(budget.stats).toEqual({ requests: 10, retries: 4, limit: 2, denied: 6 });
    expect(budget.tryAcquireRetry()).toBe(false);
    // At 15 s bucket 5 leaves too: a clean slate.
    c.set(15_000);
    expect(budget.stats).toEqual({ requests: 0, retries: 0, limit: 0, denied: 7 });
  });

  it("keeps a request for the whole window minus at most one bucket", () => {
    const c = clock(0);
    const budget = createRetryBudget({ ratio: 1, minRetriesPerSecond: 0, windowMs: 10_000 }, c.now);
    c.set(999);
    budget.recordRequest(); // bucket 0 = [0, 1000)
    c.set(9_999);
    expect(budget.stats.requests).toBe(1);
    c.set(10_000);
    expect(budget.stats.requests).toBe(0);
  });

  it("clears everything after a gap longer than the window, in one step", () => {
    const c = clock(0);
    const budget = createRetryBudget(noFloor, c.now);
    record(budget, 50);
    expect(acquire(budget, 3)).toBe(3);
    c.advance(3_600_000);
    expect(budget.stats).toEqual({ requests: 0, retries: 0, limit: 0, denied: 0 });
    record(budget, 5);
    expect(acquire(budget, 2)).toBe(1);
  });

  it("tolerates the clock stepping back: counts go on in the current bucket", () => {
    const c = clock(50_000);
    const budget = createRetryBudget(noFloor, c.now);
    record(budget, 10);
    c.set(20_000);
    record(budget, 5);
    expect(budget.stats.requests).toBe(15);
    expect(acquire(budget, 5)).toBe(3);
    // Time catches up past the original bucket: all of it expires together.
    c.set(60_000);
    expect(budget.stats).toEqual({ requests: 0, retries: 0, limit: 0, denied: 2 });
  });

  it("supports a custom bucket count", () => {
    const c = clock(0);
    const budget = createRetryBudget({ ratio: 1, minRetriesPerSecond: 0, windowMs: 1_000, buckets: 2 }, c.now);
    budget.recordRequest(); // bucket [0, 500)
    c.set(600);
    budget.recordRequest(); // bucket [500, 1000)
    c.set(1_000);
    expect(budget.stats.requests).toBe(1);
  });

  it.each([
    ["ratio", { ratio: -0.1 }],
    ["ratio", { ratio: Number.NaN }],
    ["minRetriesPerSecond", { minRetriesPerSecond: -1 }],
    ["windowMs", { windowMs: 0 }],
    ["buckets", { buckets: 0 }],
    ["buckets", { buckets: 2.5 }],
  ])("rejects a bad %s when built", (field, bad) => {
    expect(() => createRetryBudget({ ...noFloor, ...bad }, clock().now)).toThrow(`retryBudget.${field}`);
  });

  it("reads the clock through the injected now, never Date.now", () => {
    let calls = 0;
    const budget = createRetryBudget(noFloor, () => {
      calls++;
      return 0;
    });
    budget.recordRequest();
    budget.tryAcquireRetry();
    expect(calls).toBe(3); // construction + one per call
  });
});
