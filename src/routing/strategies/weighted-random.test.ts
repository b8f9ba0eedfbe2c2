import { describe, expect, it } from "vitest";
import { seededRandom } from "./seeded-random.js";
import { binomialTolerance, candidates, firstCounts, keys } from "../../../test/helpers/strategy-support.js";
import { createWeightedRandomStrategy } from "./weighted-random.js";

const context = { metadata: {} };

describe("weighted random strategy", () => {
  it("puts each candidate first in proportion to its weight (1/5/20/74 over 10,000 picks)", () => {
    const strategy = createWeightedRandomStrategy({ random: seededRandom(42) });
    const list = candidates({ a: 1, b: 5, c: 20, d: 74 });
    const n = 10_000;
    const counts = firstCounts(n, () => strategy.order(list, context));
    for (const [key, weight] of [
      ["a", 1],
      ["b", 5],
      ["c", 20],
      ["d", 74],
    ] as const) {
      const p = weight / 100;
      expect(Math.abs((counts[key] ?? 0) - n * p)).toBeLessThanOrEqual(binomialTolerance(n, p));
    }
  });

  it("draws the fail-over order by weight from what remains (without replacement)", () => {
    // a:2 b:1 c:1 → P(second = a) = P(first=b)·2/3 + P(first=c)·2/3 = 1/4·2/3·2 = 1/3.
    const strategy = createWeightedRandomStrategy({ random: seededRandom(7) });
    const list = candidates({ a: 2, b: 1, c: 1 });
    const n = 10_000;
    let secondA = 0;
    for (let i = 0; i < n; i++) {
      const order = strategy.order(list, context);
      expect(new Set(keys(order)).size).toBe(3);
      if (order[1]!.key === "a") secondA++;
    }
    expect(Math.abs(secondA - n / 3)).toBeLessThanOrEqual(binomialTolerance(n, 1 / 3));
  });

  it("never puts a zero-weight candidate first, but keeps it as the last-resort fail-over", () => {
    const strategy = createWeightedRandomStrategy({ random: seededRandom(1) });
    const list = candidates({ spare: 0, a: 1, b: 1, backup: 0 });
    for (let i = 0; i < 1_000; i++) {
      const order = keys(strategy.order(list, context));
      expect(order.slice(2)).toEqual(["spare", "backup"]);
      expect(order.slice(0, 2).sort()).toEqual(["a", "b"]);
    }
  });

  it("ramps a new deployment by weight: 1 beside 99 takes ~1 %", () => {
    const strategy = createWeightedRandomStrategy({ random: seededRandom(99) });
    const n = 10_000;
    const counts = firstCounts(n, () => strategy.order(candidates({ stable: 99, canary: 1 }), context));
    expect(Math.abs((counts.canary ?? 0) - 100)).toBeLessThanOrEqual(binomialTolerance(n, 0.01));
  });

  it("keeps the given order when every weight is 0, and handles empty and single lists", () => {
    const strategy = createWeightedRandomStrategy({ random: seededRandom(3) });
    expect(keys(strategy.order(candidates({ a: 0, b: 0 }), context))).toEqual(["a", "b"]);
    expect(strategy.order([], context)).toEqual([]);
    expect(keys(strategy.order(candidates({ only: 5 }), context))).toEqual(["only"]);
  });

  it("returns a new array and leaves its (frozen) input alone", () => {
    const list = candidates({ a: 1, b: 1 });
    const order = createWeightedRandomStrategy({ random: seededRandom(5) }).order(list, context);
    expect(order).not.toBe(list);
    expect(keys(list)).toEqual(["a", "b"]);
  });
});
