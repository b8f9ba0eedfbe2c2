import { describe, expect, it } from "vitest";
import { fmix32, fnv1a, fnvOffsetBasis } from "./hash.js";

describe("fnv1a / fmix32", () => {
  it("matches the published FNV-1a 32-bit test vectors (stable across processes)", () => {
    expect(fnv1a("")).toBe(fnvOffsetBasis);
    expect(fnv1a("a")).toBe(0xe40c292c);
    expect(fnv1a("foobar")).toBe(0xbf9cf968);
  });

  it("continues from a state as if the strings were concatenated", () => {
    expect(fnv1a("bar", fnv1a("foo"))).toBe(fnv1a("foobar"));
  });

  it("finalises with MurmurHash3's fmix32 (0 stays 0, outputs are unsigned 32-bit)", () => {
    expect(fmix32(0)).toBe(0);
    const h = fmix32(fnv1a("user-1"));
    expect(h).toBeGreaterThanOrEqual(0);
    expect(h).toBeLessThan(2 ** 32);
    expect(fmix32(fnv1a("user-2"))).not.toBe(h);
  });
});
