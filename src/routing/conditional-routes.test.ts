import { describe, expect, it } from "vitest";
import { createRouteSelector, selectRoute, type ConditionalRoute, type RouteRequest } from "./conditional-routes.js";

const routes: readonly ConditionalRoute[] = [
  { match: { headers: { "X-Canary": "1" } }, deployments: ["openai/gpt-next"] },
  { match: { tenant: "acme", metadata: { tier: "gold" } }, deployments: ["anthropic/claude", "openai/gpt"] },
  { match: { metadata: { experiment: "b" }, headers: { "x-region": "eu" } }, deployments: ["azure/gpt-eu"] },
];

/** Headers as node:http / HTTP/2 expose them: lower-case names. */
function request(init: { metadata?: Record<string, string>; headers?: Record<string, string>; tenant?: string }): RouteRequest {
  const headers = init.headers ?? {};
  return {
    metadata: init.metadata ?? {},
    headers: (name) => (Object.hasOwn(headers, name) ? headers[name] : undefined),
    ...(init.tenant === undefined ? {} : { tenant: init.tenant }),
  };
}

// Both entry points must agree on every case.
const selectors = {
  selectRoute: (req: RouteRequest) => selectRoute(routes, req),
  createRouteSelector: createRouteSelector(routes),
};

describe.each(Object.entries(selectors))("%s", (_name, select) => {
  it("matches header names case-insensitively, values exactly", () => {
    expect(select(request({ headers: { "x-canary": "1" } }))).toEqual(["openai/gpt-next"]);
    expect(select(request({ headers: { "x-canary": "true" } }))).toBeUndefined();
  });

  it("needs every condition of a route (tenant and metadata)", () => {
    expect(select(request({ tenant: "acme", metadata: { tier: "gold" } }))).toEqual(["anthropic/claude", "openai/gpt"]);
    expect(select(request({ tenant: "acme", metadata: { tier: "silver" } }))).toBeUndefined();
    expect(select(request({ tenant: "other", metadata: { tier: "gold" } }))).toBeUndefined();
    expect(select(request({ metadata: { tier: "gold" } }))).toBeUndefined();
    expect(select(request({ metadata: { experiment: "b" } }))).toBeUndefined();
    expect(select(request({ metadata: { experiment: "b" }, headers: { "x-region": "eu" } }))).toEqual(["azure/gpt-eu"]);
  });

  it("takes the first matching route", () => {
    expect(select(request({ tenant: "acme", metadata: { tier: "gold" }, headers: { "x-canary": "1" } }))).toEqual([
      "openai/gpt-next",
    ]);
  });

  it("returns undefined when nothing matches, and never matches inherited properties", () => {
    expect(select(request({}))).toBeUndefined();
    const proto = selectRoute([{ match: { metadata: { constructor: "x" } }, deployments: ["p/m"] }], request({}));
    expect(proto).toBeUndefined();
  });
});

describe("conditional routes", () => {
  it("treats an empty match as a catch-all and an empty list as no routes", () => {
    const catchAll: ConditionalRoute[] = [
      { match: { tenant: "t" }, deployments: ["a/1"] },
      { match: {}, deployments: ["b/2"] },
    ];
    expect(selectRoute(catchAll, request({}))).toEqual(["b/2"]);
    expect(createRouteSelector(catchAll)(request({ tenant: "t" }))).toEqual(["a/1"]);
    expect(selectRoute([], request({}))).toBeUndefined();
    expect(createRouteSelector([])(request({}))).toBeUndefined();
  });

  it("returns the route's own array (no copy per request) and asks for lower-case header names", () => {
    const asked: string[] = [];
    const req: RouteRequest = {
      metadata: {},
      headers: (name) => {
        asked.push(name);
        return "1";
      },
    };
    expect(selectRoute(routes, req)).toBe(routes[0]!.deployments);
    expect(asked).toEqual(["x-canary"]);
  });
});
