import { describe, expect, it } from "vitest";
import { createRoundRobinStrategy } from "./round-robin.js";
import { candidates, keys } from "../../../test/helpers/strategy-support.js";

const context = { metadata: {} };

describe("round-robin strategy", () => {
  it("starts one further along each call and fails over to the next ones in turn", () => {
    const strategy = createRoundRobinStrategy();
    const list = candidates({ a: 1, b: 1, c: 1 });
    const orders = Array.from({ length: 4 }, () => keys(strategy.order(list, context)));
    expect(orders).toEqual([
      ["a", "b", "c"],
      ["b", "c", "a"],
      ["c", "a", "b"],
      ["a", "b", "c"],
    ]);
  });

  it("ignores positive weights: equal shares whatever the weights", () => {
    const strategy = createRoundRobinStrategy();
    const list = candidates({ a: 1, b: 99 });
    const firsts = Array.from({ length: 4 }, () => strategy.order(list, context)[0]!.key);
    expect(firsts).toEqual(["a", "b", "a", "b"]);
  });

  it("keeps zero-weight candidates last and out of the rotation", () => {
    const strategy = createRoundRobinStrategy();
    const list = candidates({ spare: 0, a: 1, b: 1 });
    expect(keys(strategy.order(list, context))).toEqual(["a", "b", "spare"]);
    expect(keys(strategy.order(list, context))).toEqual(["b", "a", "spare"]);
  });

  it("does not mutate its input and copes with lists that change size between calls", () => {
    const strategy = createRoundRobinStrategy();
    const three = candidates({ a: 1, b: 1, c: 1 });
    strategy.order(three, context);
    strategy.order(three, context);
    expect(keys(strategy.order(candidates({ x: 1, y: 1 }), context))).toEqual(["x", "y"]);
    expect(keys(three)).toEqual(["a", "b", "c"]);
    expect(strategy.order([], context)).toEqual([]);
  });
});
