import { describe, expect, it } from "vitest";
import { createContextKey } from "@connectrpc/connect";
import { CallValues, callRequestHeaders } from "./call-request-headers.js";

const incoming = {
  ":path": "/sluice.v1.ChatService/Complete",
  ":authority": "127.0.0.1:8080",
  "content-type": "application/json",
  "x-tenant": "acme",
  "set-cookie": ["a=1", "b=2"],
  "x-absent": undefined,
};

describe("callRequestHeaders", () => {
  it("reads as the Headers connect-node builds from the same request, pseudo-headers left out (the iteration below)", () => {
    const headers = callRequestHeaders(incoming);
    expect(headers).toBeInstanceOf(Headers);
    expect(headers.get("X-Tenant")).toBe("acme");
    expect(headers.has("x-absent")).toBe(false);
    expect(headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect([...headers]).toEqual([
      ["content-type", "application/json"],
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["x-tenant", "acme"],
    ]);
  });

  it.each([
    ["keys", (h: Headers) => [...h.keys()]],
    ["values", (h: Headers) => [...h.values()]],
    ["entries", (h: Headers) => [...h.entries()]],
    [
      "forEach",
      (h: Headers) => {
        const seen: string[] = [];
        h.forEach((value, key) => {
          seen.push(`${key}=${value}`);
        });
        return seen;
      },
    ],
    ["a copy (new Headers)", (h: Headers) => [...new Headers(h)]],
    ["has", (h: Headers) => h.has("x-tenant")],
  ])("is complete when first read through %s", (_name, read) => {
    const lazy = read(callRequestHeaders(incoming));
    const eager = new Headers();
    eager.set("content-type", "application/json");
    eager.append("set-cookie", "a=1");
    eager.append("set-cookie", "b=2");
    eager.set("x-tenant", "acme");
    expect(lazy).toEqual(read(eager));
  });

  it("answers get and has before any fill exactly as a filled Headers does, invalid names included", () => {
    const eager = new Headers();
    eager.set("content-type", "application/json");
    eager.append("set-cookie", "a=1");
    eager.append("set-cookie", "b=2");
    eager.set("x-tenant", "acme");
    for (const name of ["Content-Type", "x-tenant", "X-ABSENT", "set-cookie", "x-missing"]) {
      expect(callRequestHeaders(incoming).get(name), name).toBe(eager.get(name));
      expect(callRequestHeaders(incoming).has(name), name).toBe(eager.has(name));
    }
    for (const bad of [":path", "bad name", ""]) {
      expect(() => callRequestHeaders(incoming).get(bad), bad).toThrow(TypeError);
      expect(() => eager.get(bad), bad).toThrow(TypeError);
    }
  });

  it("keeps a write made before any read, over the caller's value", () => {
    const headers = callRequestHeaders(incoming);
    headers.set("x-tenant", "other");
    headers.append("x-extra", "1");
    headers.delete("content-type");
    expect(headers.get("x-tenant")).toBe("other");
    expect(headers.get("x-extra")).toBe("1");
    expect(headers.has("content-type")).toBe(false);
  });

  it("survives a spread copy of the object holding it", () => {
    const request = { header: callRequestHeaders(incoming) };
    const copy = { ...request };
    expect(copy.header.get("x-tenant")).toBe("acme");
  });
});

describe("CallValues", () => {
  it("behaves as connect's createContextValues: defaults, set, delete", () => {
    const key = createContextKey<string>("fallback");
    const values = new CallValues();
    expect(values.get(key)).toBe("fallback");
    expect(values.set(key, "set").get(key)).toBe("set");
    expect(values.delete(key).get(key)).toBe("fallback");
  });
});
