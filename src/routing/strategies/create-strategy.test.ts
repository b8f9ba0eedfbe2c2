import { describe, expect, it } from "vitest";
import { createStrategy, type StrategyType } from "./create-strategy.js";
import { seededRandom } from "./seeded-random.js";
import { candidates, keys, manualClock } from "../../../test/helpers/strategy-support.js";

const list = candidates({ a: 1, b: 3, spare: 0 });
const context = { metadata: { end_user: "u1" } };

describe("createStrategy", () => {
  it("builds every configured type, each returning all candidates with zero-weight last", () => {
    const types: StrategyType[] = ["ordered", "weighted", "round-robin", "least-latency", "p2c", "sticky"];
    for (const type of types) {
      const strategy = createStrategy({ type, stickyKey: "end_user" }, { random: seededRandom(1), now: manualClock() });
      const order = keys(strategy.order(list, context));
      expect(order.slice().sort(), type).toEqual(["a", "b", "spare"]);
      expect(order[2], type).toBe("spare");
    }
  });

  it("keeps the configured order for `ordered`", () => {
    expect(keys(createStrategy({ type: "ordered" }).order(candidates({ z: 0, y: 1 }), context))).toEqual(["z", "y"]);
  });

  it("wires the injected random into weighted strategies and the clock into least-latency", () => {
    const first = (seed: number) =>
      createStrategy({ type: "weighted" }, { random: seededRandom(seed) }).order(list, context)[0]!.key;
    expect(first(5)).toBe(first(5));
    const clock = manualClock();
    const latency = createStrategy({ type: "least-latency", ewmaAlpha: 0.5 }, { now: clock });
    latency.observe!("a", { ttftMs: 100, ok: true });
    latency.observe!("b", { ttftMs: 50, ok: true });
    expect(latency.order(list, context)[0]!.key).toBe("b");
    clock.advance(30_000); // both stale: the faster stale one is re-explored first
    expect(latency.order(list, context)[0]!.key).toBe("b");
    expect(latency.order(list, context)[0]!.key).toBe("a");
  });

  it("exposes in-flight hooks on p2c and feedback on least-latency", () => {
    expect(typeof createStrategy({ type: "p2c" }).begin).toBe("function");
    expect(typeof createStrategy({ type: "least-latency" }).observe).toBe("function");
  });

  it("fails at build time on bad options", () => {
    expect(() => createStrategy({ type: "sticky" })).toThrow(/stickyKey/);
    expect(() => createStrategy({ type: "least-latency", ewmaAlpha: 2 })).toThrow(/ewmaAlpha/);
    expect(() => createStrategy({ type: "bogus" as StrategyType })).toThrow(/unknown strategy/);
  });
});
