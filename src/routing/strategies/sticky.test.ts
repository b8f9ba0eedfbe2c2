import { describe, expect, it } from "vitest";
import { seededRandom } from "./seeded-random.js";
import { createStickyStrategy } from "./sticky.js";
import { binomialTolerance, candidates, keys } from "../../../test/helpers/strategy-support.js";

const user = (id: string) => ({ metadata: { end_user: id } });

describe("sticky strategy (weighted rendezvous hashing)", () => {
  it("gives the same user the same order every call, in every instance (replicas agree)", () => {
    const list = candidates({ a: 1, b: 1, c: 1, d: 1 });
    const one = createStickyStrategy({ stickyKey: "end_user" });
    const other = createStickyStrategy({ stickyKey: "end_user" });
    for (let i = 0; i < 100; i++) {
      const first = keys(one.order(list, user(`u${i}`)));
      expect(keys(one.order(list, user(`u${i}`)))).toEqual(first);
      expect(keys(other.order(list, user(`u${i}`)))).toEqual(first);
    }
  });

  it("does not depend on the order deployments are listed in", () => {
    const strategy = createStickyStrategy({ stickyKey: "end_user" });
    const forward = candidates({ a: 1, b: 2, c: 3 });
    const backward = candidates({ c: 3, b: 2, a: 1 });
    for (let i = 0; i < 200; i++) {
      expect(keys(strategy.order(backward, user(`u${i}`)))).toEqual(keys(strategy.order(forward, user(`u${i}`))));
    }
  });

  it("spreads users by weight (1/5/20/74 over 10,000 users)", () => {
    const strategy = createStickyStrategy({ stickyKey: "end_user" });
    const list = candidates({ a: 1, b: 5, c: 20, d: 74 });
    const n = 10_000;
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const key = strategy.order(list, user(`user-${i}`))[0]!.key;
      counts[key] = (counts[key] ?? 0) + 1;
    }
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

  it("removing a deployment moves only its own users, each to their previous fail-over (1,000 users)", () => {
    const strategy = createStickyStrategy({ stickyKey: "session" });
    const before = candidates({ a: 1, b: 1, c: 1, d: 1 });
    const after = candidates({ a: 1, b: 1, c: 1 });
    let onD = 0;
    let moved = 0;
    for (let i = 0; i < 1_000; i++) {
      const context = { metadata: { session: `s-${i}` } };
      const was = keys(strategy.order(before, context));
      const now = keys(strategy.order(after, context));
      if (was[0] === "d") {
        onD++;
        expect(now[0]).toBe(was[1]);
      }
      if (now[0] !== was[0]) moved++;
      // The whole fail-over order is the old one minus d.
      expect(now).toEqual(was.filter((k) => k !== "d"));
    }
    expect(moved).toBe(onD);
    expect(Math.abs(onD - 250)).toBeLessThanOrEqual(binomialTolerance(1_000, 0.25));
  });

  it("falls back to weighted random when the key is missing or empty", () => {
    const strategy = createStickyStrategy({ stickyKey: "end_user" }, { random: seededRandom(21) });
    const list = candidates({ a: 1, b: 1 });
    const firsts = new Set<string>();
    for (let i = 0; i < 50; i++) {
      firsts.add(strategy.order(list, { metadata: {} })[0]!.key);
      firsts.add(strategy.order(list, user(""))[0]!.key);
    }
    expect(firsts).toEqual(new Set(["a", "b"]));
    // An inherited property ("constructor" is a function on every object) is not a value.
    const byConstructor = createStickyStrategy({ stickyKey: "constructor" }, { random: seededRandom(22) });
    expect(keys(byConstructor.order(list, { metadata: {} })).sort()).toEqual(["a", "b"]);
  });

  it("keeps zero-weight candidates last, in the given order, and never mutates input", () => {
    const strategy = createStickyStrategy({ stickyKey: "end_user" });
    const list = candidates({ spare: 0, a: 1, b: 1, backup: 0 });
    for (let i = 0; i < 100; i++) expect(keys(strategy.order(list, user(`u${i}`))).slice(2)).toEqual(["spare", "backup"]);
    expect(keys(list)).toEqual(["spare", "a", "b", "backup"]);
  });

  it("needs a sticky key when built", () => {
    expect(() => createStickyStrategy({ stickyKey: "" })).toThrow(/stickyKey/);
  });
});
