import { describe, expect, it } from "vitest";
import { createPowerOfTwoChoicesStrategy } from "./power-of-two-choices.js";
import { seededRandom } from "./seeded-random.js";
import { binomialTolerance, candidates, firstCounts, keys } from "../../../test/helpers/strategy-support.js";

const context = { metadata: {} };

function busy(strategy: ReturnType<typeof createPowerOfTwoChoicesStrategy>, key: string, n: number): void {
  for (let i = 0; i < n; i++) strategy.begin!(key);
}

describe("power-of-two-choices strategy", () => {
  it("never puts the most loaded candidate first; the least loaded wins every draw it is in", () => {
    const strategy = createPowerOfTwoChoicesStrategy({ random: seededRandom(11) });
    const list = candidates({ a: 1, b: 1, c: 1 });
    busy(strategy, "b", 1);
    busy(strategy, "c", 2);
    const n = 3_000;
    const counts = firstCounts(n, () => strategy.order(list, context));
    // a is in 2 of the 3 equally likely pairs; b only wins the pair (b, c).
    expect(counts.c ?? 0).toBe(0);
    expect(Math.abs((counts.a ?? 0) - (2 / 3) * n)).toBeLessThanOrEqual(binomialTolerance(n, 2 / 3));
  });

  it("puts the other of the two second and the rest after, all candidates present", () => {
    const strategy = createPowerOfTwoChoicesStrategy({ random: seededRandom(12) });
    busy(strategy, "a", 5);
    const order = keys(strategy.order(candidates({ a: 1, b: 1 }), context));
    expect(order).toEqual(["b", "a"]);
    const four = keys(strategy.order(candidates({ a: 1, b: 1, c: 1, d: 1 }), context));
    expect(four.slice().sort()).toEqual(["a", "b", "c", "d"]);
  });

  it("falls back to weights when loads tie, and end() restores the balance", () => {
    const strategy = createPowerOfTwoChoicesStrategy({ random: seededRandom(13) });
    const list = candidates({ a: 3, b: 1 });
    busy(strategy, "a", 4);
    expect(firstCounts(100, () => strategy.order(list, context))).toEqual({ b: 100 });
    for (let i = 0; i < 4; i++) strategy.end!("a");
    const n = 10_000;
    const counts = firstCounts(n, () => strategy.order(list, context));
    expect(Math.abs((counts.a ?? 0) - 0.75 * n)).toBeLessThanOrEqual(binomialTolerance(n, 0.75));
  });

  it("ignores end() without begin() instead of going negative", () => {
    const strategy = createPowerOfTwoChoicesStrategy({ random: seededRandom(14) });
    strategy.end!("a");
    strategy.end!("a");
    strategy.begin!("a"); // a is at 1 now; had it gone to -2 it would be at -1 and beat idle b
    expect(firstCounts(100, () => strategy.order(candidates({ a: 1, b: 1 }), context))).toEqual({ b: 100 });
  });

  it("keeps zero-weight candidates last even when idle, and a lone positive one first", () => {
    const strategy = createPowerOfTwoChoicesStrategy({ random: seededRandom(15) });
    busy(strategy, "a", 10);
    const list = candidates({ spare: 0, a: 1 });
    expect(keys(strategy.order(list, context))).toEqual(["a", "spare"]);
    expect(keys(list)).toEqual(["spare", "a"]);
    expect(strategy.order([], context)).toEqual([]);
  });
});
