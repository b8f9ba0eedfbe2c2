import { describe, expect, it } from "vitest";
import { formatUrl, parseListenAddress } from "./listen-address.js";

describe("listen address", () => {
  it("parses host:port, bracketed IPv6 and port 0", () => {
    expect(parseListenAddress("127.0.0.1:8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseListenAddress("[::1]:0")).toEqual({ host: "::1", port: 0 });
    expect(parseListenAddress("localhost:443")).toEqual({ host: "localhost", port: 443 });
  });

  it("rejects what cannot be bound, naming the value", () => {
    for (const bad of ["8080", "::1:8080", "host:", "host:70000", "a b:1"]) {
      expect(() => parseListenAddress(bad)).toThrow(bad);
    }
  });

  it("formats URLs, bracketing IPv6 hosts", () => {
    expect(formatUrl("http", "127.0.0.1", 1)).toBe("http://127.0.0.1:1");
    expect(formatUrl("https", "::1", 2)).toBe("https://[::1]:2");
  });
});
