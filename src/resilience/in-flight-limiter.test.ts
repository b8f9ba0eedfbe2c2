import { describe, expect, it } from "vitest";
import { createInFlightLimiter } from "./in-flight-limiter.js";

describe("in-flight limiter", () => {
  it("admits up to the limit, refuses past it, and admits again after a release", () => {
    const limiter = createInFlightLimiter();
    expect(limiter.tryAcquire("local/llama", 2)).toBe(true);
    expect(limiter.tryAcquire("local/llama", 2)).toBe(true);
    expect(limiter.tryAcquire("local/llama", 2)).toBe(false);
    expect(limiter.counts()).toEqual({ "local/llama": 2 });
    limiter.release("local/llama", 2);
    expect(limiter.tryAcquire("local/llama", 2)).toBe(true);
  });

  it("counts deployments separately and leaves unlimited ones alone", () => {
    const limiter = createInFlightLimiter();
    expect(limiter.tryAcquire("a/m", 1)).toBe(true);
    expect(limiter.tryAcquire("b/m", 1)).toBe(true);
    for (let i = 0; i < 100; i++) expect(limiter.tryAcquire("c/m", undefined)).toBe(true);
    expect(limiter.counts()).toEqual({ "a/m": 1, "b/m": 1 });
  });

  it("shares one count between aliases naming the same deployment, each with its own limit", () => {
    const limiter = createInFlightLimiter();
    expect(limiter.tryAcquire("local/llama", 3)).toBe(true);
    expect(limiter.tryAcquire("local/llama", 3)).toBe(true);
    // Another alias allows only 2 on the same deployment: it is already full for that alias.
    expect(limiter.tryAcquire("local/llama", 2)).toBe(false);
    expect(limiter.tryAcquire("local/llama", 3)).toBe(true);
  });

  it("throws on a release without an acquire (a bookkeeping bug must not go unnoticed)", () => {
    const limiter = createInFlightLimiter();
    expect(() => limiter.release("a/m", 1)).toThrow(/release without acquire/);
  });
});
