import { describe, expect, it } from "vitest";
import { createLatencyQuantiles } from "./latency-quantiles.js";

describe("latency quantiles", () => {
  it("has no estimate until minSamples were seen", () => {
    const q = createLatencyQuantiles({ minSamples: 5 });
    for (let i = 1; i <= 4; i++) q.record("openai/gpt", "ttft", i * 10);
    expect(q.quantile("openai/gpt", "ttft", 95)).toBeUndefined();
    q.record("openai/gpt", "ttft", 50);
    expect(q.quantile("openai/gpt", "ttft", 95)).toBe(50);
  });

  it("answers the nearest-rank percentile of the samples", () => {
    const q = createLatencyQuantiles({ minSamples: 1, recomputeEvery: 1 });
    // 1..100 in a shuffled order: p95 is 95, p50 is 50.
    const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const v of values) q.record("k", "latency", v);
    expect(q.quantile("k", "latency", 95)).toBe(95);
    expect(q.quantile("k", "latency", 50)).toBe(50);
    expect(q.quantile("k", "latency", 100)).toBe(100);
  });

  it("keeps streams' time to first token apart from unary latency, and deployments apart", () => {
    const q = createLatencyQuantiles({ minSamples: 1, recomputeEvery: 1 });
    q.record("a/m", "ttft", 100);
    q.record("a/m", "latency", 2_000);
    q.record("b/m", "ttft", 7);
    expect(q.quantile("a/m", "ttft", 95)).toBe(100);
    expect(q.quantile("a/m", "latency", 95)).toBe(2_000);
    expect(q.quantile("b/m", "ttft", 95)).toBe(7);
  });

  it("follows a shift: only the newest windowSize samples count", () => {
    const q = createLatencyQuantiles({ windowSize: 10, minSamples: 1, recomputeEvery: 1 });
    for (let i = 0; i < 10; i++) q.record("k", "ttft", 1_000);
    expect(q.quantile("k", "ttft", 95)).toBe(1_000);
    for (let i = 0; i < 10; i++) q.record("k", "ttft", 20);
    expect(q.quantile("k", "ttft", 95)).toBe(20);
  });

  it("recomputes a cached quantile only after recomputeEvery new samples", () => {
    const q = createLatencyQuantiles({ windowSize: 8, minSamples: 1, recomputeEvery: 4 });
    for (let i = 0; i < 8; i++) q.record("k", "ttft", 10);
    expect(q.quantile("k", "ttft", 95)).toBe(10);
    for (let i = 0; i < 3; i++) q.record("k", "ttft", 500);
    expect(q.quantile("k", "ttft", 95)).toBe(10);
    q.record("k", "ttft", 500);
    expect(q.quantile("k", "ttft", 95)).toBe(500);
  });

  it("ignores samples that are not durations", () => {
    const q = createLatencyQuantiles({ minSamples: 1 });
    q.record("k", "ttft", Number.NaN);
    q.record("k", "ttft", -1);
    q.record("k", "ttft", Number.POSITIVE_INFINITY);
    expect(q.quantile("k", "ttft", 95)).toBeUndefined();
  });
});
