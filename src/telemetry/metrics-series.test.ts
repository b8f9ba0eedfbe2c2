import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CappedSeries } from "./metrics-capped.js";
import { HistogramFamily, ValueFamily } from "./metrics-series.js";

describe("metric series", () => {
  it("a histogram puts a value equal to a bound in that bound's bucket and prints cumulative counts, sum and count", async () => {
    const registry = new Registry();
    const family = new HistogramFamily("h_seconds", "help", ["a"], [0.1, 1]).register(registry);
    const series = family.series({ a: "x" });
    for (const value of [0.05, 0.1, 0.5, 7]) series.observe(value);
    expect(await registry.metrics()).toBe(
      [
        "# HELP h_seconds help",
        "# TYPE h_seconds histogram",
        'h_seconds_bucket{le="0.1",a="x"} 2',
        'h_seconds_bucket{le="1",a="x"} 3',
        'h_seconds_bucket{le="+Inf",a="x"} 4',
        'h_seconds_sum{a="x"} 7.65',
        'h_seconds_count{a="x"} 4',
        "",
      ].join("\n"),
    );
  });

  it("one series per label tuple, whatever the order the labels are given in", () => {
    const family = new ValueFamily("c_total", "help", "counter", ["a", "b"]);
    expect(family.series({ a: "1", b: "2" })).toBe(family.series({ b: "2", a: "1" }));
    expect(family.series({ a: "1", b: "2" })).not.toBe(family.series({ a: "12", b: "" }));
  });

  it("refuses bounds that do not increase and an `le` label", () => {
    expect(() => new HistogramFamily("h", "help", [], [1, 1])).toThrow(/increase/);
    expect(() => new HistogramFamily("h", "help", ["le"], [1])).toThrow(/reserved/);
  });

  it("capped series: the first values get their own, later ones share other; long values are cut", () => {
    const made: string[] = [];
    const capped = new CappedSeries(2, (value) => {
      made.push(value);
      return value;
    });
    expect([capped.get("a"), capped.get("b"), capped.get("c"), capped.get("a"), capped.get("d")]).toEqual([
      "a",
      "b",
      "other",
      "a",
      "other",
    ]);
    expect(made).toEqual(["a", "b", "other"]);
    expect(new CappedSeries(5, (value) => value).get("x".repeat(500))).toHaveLength(120);
  });
});
