import { describe, expect, it } from "vitest";
import { createLeastLatencyStrategy } from "./least-latency.js";
import { candidates, keys, manualClock } from "../../../test/helpers/strategy-support.js";

const context = { metadata: {} };
const ok = (ms: number) => ({ ttftMs: ms, ok: true });

/** A strategy with every candidate already measured once (exploration done). */
function measured(latencies: Record<string, number>, options = {}) {
  const clock = manualClock(1_000);
  const strategy = createLeastLatencyStrategy(options, { now: clock });
  for (const [key, ms] of Object.entries(latencies)) strategy.observe!(key, ok(ms));
  return { strategy, clock, list: candidates(Object.fromEntries(Object.keys(latencies).map((k) => [k, 1]))) };
}

describe("least-latency strategy", () => {
  it("orders measured candidates fastest first", () => {
    const { strategy, list } = measured({ a: 300, b: 100, c: 200 });
    expect(keys(strategy.order(list, context))).toEqual(["b", "c", "a"]);
  });

  it("explores unmeasured candidates first, one call each, in configured order", () => {
    const clock = manualClock();
    const strategy = createLeastLatencyStrategy({}, { now: clock });
    const list = candidates({ a: 1, b: 1, c: 1 });
    expect(strategy.order(list, context)[0]!.key).toBe("a");
    expect(strategy.order(list, context)[0]!.key).toBe("b");
    expect(strategy.order(list, context)[0]!.key).toBe("c");
    // All three are being probed: no herd onto them; configured order until samples arrive.
    expect(keys(strategy.order(list, context))).toEqual(["a", "b", "c"]);
  });

  it("measures a newly added deployment before trusting the incumbent", () => {
    const { strategy, clock } = measured({ old: 100 });
    clock.advance(1);
    const list = candidates({ old: 1, fresh: 1 });
    expect(keys(strategy.order(list, context))).toEqual(["fresh", "old"]);
    // While its probe is in flight the new one ranks after every measured candidate.
    expect(keys(strategy.order(list, context))).toEqual(["old", "fresh"]);
    strategy.observe!("fresh", ok(50));
    expect(keys(strategy.order(list, context))).toEqual(["fresh", "old"]);
  });

  it("follows the EWMA with alpha 0.3: a 100 → 400 ms shift overtakes a steady 300 ms on the 4th sample", () => {
    // a: 100 → 190 → 253 → 297.1 → 327.97 (0.3·400 + 0.7·previous)
    const { strategy, list } = measured({ a: 100, b: 300 });
    const firsts: string[] = [];
    for (let i = 0; i < 4; i++) {
      strategy.observe!("a", ok(400));
      firsts.push(strategy.order(list, context)[0]!.key);
    }
    expect(firsts).toEqual(["a", "a", "a", "b"]);
  });

  it("honours a configured alpha (0.5: 100 → 250 → 325 overtakes 300 on the 2nd sample)", () => {
    const { strategy, list } = measured({ a: 100, b: 300 }, { ewmaAlpha: 0.5 });
    strategy.observe!("a", ok(400));
    expect(strategy.order(list, context)[0]!.key).toBe("a");
    strategy.observe!("a", ok(400));
    expect(strategy.order(list, context)[0]!.key).toBe("b");
  });

  it("converges to a new steady latency (within 1 % after 13 samples: 0.7^13 ≈ 0.01)", () => {
    const { strategy, list } = measured({ a: 1_000, low: 495, high: 505 });
    for (let i = 0; i < 13; i++) strategy.observe!("a", ok(500));
    expect(keys(strategy.order(list, context))).toEqual(["low", "a", "high"]);
  });

  it("prefers time to first token, else whole latency; ignores successes without timings", () => {
    const { strategy, list } = measured({ a: 200, b: 300 });
    strategy.observe!("b", { ttftMs: 10, latencyMs: 5_000, ok: true }); // b: 0.3·10 + 0.7·300 = 213
    strategy.observe!("a", { latencyMs: 1_000, ok: true }); // a: 0.3·1000 + 0.7·200 = 440
    strategy.observe!("a", { ok: true });
    expect(keys(strategy.order(list, context))).toEqual(["b", "a"]);
  });

  it("penalises a failure as a 10 s sample, and a recovered deployment climbs back", () => {
    const { strategy, list } = measured({ a: 500, b: 1_000 });
    strategy.observe!("a", { ttftMs: 20, ok: false }); // a fast error is not a fast deployment: a → 3,350
    expect(strategy.order(list, context)[0]!.key).toBe("b");
    // 3350 → 2495 → 1896.5 → 1477.6 → 1184.3 → 979.0: first again after 5 successes.
    const firsts: string[] = [];
    for (let i = 0; i < 5; i++) {
      strategy.observe!("a", ok(500));
      firsts.push(strategy.order(list, context)[0]!.key);
    }
    expect(firsts).toEqual(["b", "b", "b", "b", "a"]);
  });

  it("re-explores a stale candidate once per interval so recovery is noticed", () => {
    const { strategy, clock, list } = measured({ fast: 100, slow: 2_000 });
    clock.advance(10_000);
    strategy.observe!("fast", ok(100)); // fresh; slow's sample is 10 s old
    expect(strategy.order(list, context)[0]!.key).toBe("fast");
    clock.advance(20_001); // slow's sample now > 30 s old
    strategy.observe!("fast", ok(100));
    expect(strategy.order(list, context)[0]!.key).toBe("slow");
    expect(strategy.order(list, context)[0]!.key).toBe("fast"); // one probe, not a herd
    strategy.observe!("slow", ok(50)); // it recovered
    expect(strategy.order(list, context)[0]!.key).toBe("slow");
  });

  it("keeps zero-weight candidates last even when fastest or unmeasured, and never mutates input", () => {
    const clock = manualClock();
    const strategy = createLeastLatencyStrategy({}, { now: clock });
    strategy.observe!("spare", ok(1));
    strategy.observe!("a", ok(100));
    strategy.observe!("b", ok(50));
    const list = candidates({ spare: 0, a: 1, b: 1, unmeasuredSpare: 0 });
    expect(keys(strategy.order(list, context))).toEqual(["b", "a", "spare", "unmeasuredSpare"]);
    expect(keys(list)).toEqual(["spare", "a", "b", "unmeasuredSpare"]);
  });

  it("rejects an alpha outside (0, 1] when built", () => {
    expect(() => createLeastLatencyStrategy({ ewmaAlpha: 0 })).toThrow(/ewmaAlpha/);
    expect(() => createLeastLatencyStrategy({ ewmaAlpha: 1.5 })).toThrow(/ewmaAlpha/);
    expect(() => createLeastLatencyStrategy({ ewmaAlpha: Number.NaN })).toThrow(/ewmaAlpha/);
  });
});
