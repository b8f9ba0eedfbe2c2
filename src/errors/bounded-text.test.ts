import { describe, expect, it } from "vitest";
import { cutText, cutToTrailerBudget, percentEncodedLength, trailerCost, wellFormed } from "./bounded-text.js";

const samples = [
  "",
  "plain ascii",
  "reserved: ;/?:@&=+$,# and unreserved -_.!~*'()",
  "naïve café — ½ €",
  "日本語のテキスト",
  "emoji 🚀👩‍💻 and flags 🇩🇪",
  "a".repeat(300),
];

describe("cutText", () => {
  it("returns short text as it is", () => {
    expect(cutText("hello", 5)).toBe("hello");
  });

  it("cuts long text to the limit, ending with …", () => {
    const cut = cutText("x".repeat(100), 10);
    expect(cut).toBe(`${"x".repeat(9)}…`);
    expect(cut.length).toBe(10);
  });

  it("never splits a surrogate pair", () => {
    for (let limit = 2; limit < 12; limit++) {
      const cut = cutText("🚀".repeat(10), limit);
      expect(cut.length).toBeLessThanOrEqual(limit);
      expect((cut as string & { isWellFormed(): boolean }).isWellFormed()).toBe(true);
    }
  });
});

describe("wellFormed", () => {
  it("replaces lone surrogates, which encodeURIComponent refuses", () => {
    expect(() => encodeURIComponent("a\ud800b")).toThrow();
    expect(wellFormed("a\ud800b")).toBe("a\ufffdb");
    expect(wellFormed("🚀")).toBe("🚀");
  });
});

describe("percentEncodedLength", () => {
  it("equals encodeURIComponent's length", () => {
    for (const text of samples) expect(percentEncodedLength(text)).toBe(encodeURIComponent(text).length);
  });
});

describe("cutToTrailerBudget", () => {
  const cost = (text: string) => encodeURIComponent(text).length + (Buffer.byteLength(text) * 4) / 3;

  it("keeps text that fits and measures it as sent", () => {
    for (const text of samples) {
      expect(trailerCost(text)).toBeCloseTo(cost(text), 6);
      expect(cutToTrailerBudget(text, 10_000)).toBe(text);
    }
  });

  it("cuts text that does not fit to the budget, between code points", () => {
    for (const text of samples.map((s) => s.repeat(50))) {
      for (const budget of [20, 100, 1000]) {
        const cut = cutToTrailerBudget(text, budget);
        expect(cost(cut)).toBeLessThanOrEqual(budget);
        expect((cut as string & { isWellFormed(): boolean }).isWellFormed()).toBe(true);
        if (cut !== text) expect(cut.endsWith("…")).toBe(true);
      }
    }
  });
});
