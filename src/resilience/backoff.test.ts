import { describe, expect, it, vi } from "vitest";
import { backoffDelayMs } from "./backoff.js";

const options = { initialMs: 100, maxMs: 1_000 };
const top = () => 1;

describe("backoffDelayMs", () => {
  it("doubles the ceiling per retry, starting at initialMs for the first retry", () => {
    expect([1, 2, 3, 4].map((attempt) => backoffDelayMs(attempt, options, top))).toEqual([100, 200, 400, 800]);
  });

  it("caps the ceiling at maxMs", () => {
    expect(backoffDelayMs(5, options, top)).toBe(1_000);
    expect(backoffDelayMs(9, options, top)).toBe(1_000);
  });

  it("applies full jitter: random() scales the whole ceiling, down to zero", () => {
    expect(backoffDelayMs(3, options, () => 0.25)).toBe(100);
    expect(backoffDelayMs(3, options, () => 0)).toBe(0);
    expect(backoffDelayMs(6, options, () => 0.5)).toBe(500);
  });

  it("draws exactly one random number per call", () => {
    const random = vi.fn(() => 0.5);
    backoffDelayMs(2, options, random);
    expect(random).toHaveBeenCalledTimes(1);
  });

  it("uses Math.random by default and stays within [0, ceiling)", () => {
    for (let i = 0; i < 100; i++) {
      const delay = backoffDelayMs(2, options);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(200);
    }
  });

  it("stays finite for huge attempt numbers, even with initialMs 0", () => {
    expect(backoffDelayMs(10_000, options, top)).toBe(1_000);
    expect(backoffDelayMs(10_000, { initialMs: 0, maxMs: 1_000 }, top)).toBe(0);
  });

  it("rejects attempt numbers below 1 or fractional", () => {
    expect(() => backoffDelayMs(0, options, top)).toThrow(RangeError);
    expect(() => backoffDelayMs(1.5, options, top)).toThrow(RangeError);
    expect(() => backoffDelayMs(Number.NaN, options, top)).toThrow(RangeError);
  });
});
