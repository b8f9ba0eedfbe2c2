import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/load-config.js";
import { apiKeyHash } from "./api-keys.js";
import { type AuthOutcome, anonymousListenProblem, createAuthenticator } from "./authenticator.js";
import { mintApiKey } from "./mint-api-key.js";
import { createModelAccess } from "./model-access.js";
import { createNetworkAllowList } from "./network-allow-list.js";
import { presentedKey } from "./presented-key.js";

const keyA = "sk-sluice-team-a-0123456789abcdefghijklmnop";
const keyB = "sk-sluice-team-b-zyxwvutsrqponmlkjihgfedcba";
const expiredKey = "sk-sluice-expired-00000000000000000000000000";
const disabledKey = "sk-sluice-disabled-1111111111111111111111111";
const now = Date.parse("2026-12-04T12:00:00Z");

function config(extra: Record<string, unknown> = {}) {
  return parseConfig(
    {
      providers: { demo: { type: "demo" } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
      tenants: {
        "team-a": {
          apiKeys: [
            { sha256: apiKeyHash(keyA), id: "ci" },
            { sha256: apiKeyHash(expiredKey), expiresAt: "2026-12-01T00:00:00Z" },
            { sha256: apiKeyHash(disabledKey), disabled: true },
          ],
          models: ["gpt-4o*", "demo"],
        },
        "team-b": { apiKeys: [{ sha256: apiKeyHash(keyB) }], models: ["claude-?"], allowFrom: ["10.0.0.0/8"] },
      },
      ...extra,
    },
    {},
  );
}

const headers = (init: Record<string, string>) => new Headers(init);
const peer = (address: string | undefined) => ({ remoteAddress: () => address });
const loopback = peer("127.0.0.1");

/** API keys are checked synchronously: the outcome is a plain value, never a promise. */
function settled(outcome: AuthOutcome | Promise<AuthOutcome>): AuthOutcome {
  if (outcome instanceof Promise) throw new Error("expected an outcome without a promise");
  return outcome;
}

describe("API keys", () => {
  const auth = createAuthenticator(config(), { now: () => now });

  it("a valid key, as a bearer token or in x-api-key, names its tenant and key id", () => {
    const ways: Record<string, string>[] = [
      { authorization: `Bearer ${keyA}` },
      { authorization: `bearer  ${keyA}` },
      { "x-api-key": keyA },
    ];
    for (const h of ways) {
      const { identity, refusal } = settled(auth.authenticate(headers(h), loopback));
      expect(refusal).toBeUndefined();
      expect(identity).toMatchObject({ tenant: "team-a", keyId: "ci", method: "api_key" });
    }
    expect(settled(auth.authenticate(headers({ "x-api-key": keyB }), peer("10.1.2.3"))).identity).toMatchObject({
      tenant: "team-b",
      keyId: `sha256:${apiKeyHash(keyB).slice(0, 8)}`,
    });
  });

  it.each([
    ["no credentials", {}, "missing"],
    ["an unknown key", { authorization: "Bearer sk-sluice-nobody" }, "unknown"],
    ["a valid key's prefix", { authorization: `Bearer ${keyA.slice(0, -1)}` }, "unknown"],
    ["a valid key with a suffix", { authorization: `Bearer ${keyA}x` }, "unknown"],
    ["the key's hash instead of the key", { authorization: `Bearer ${apiKeyHash(keyA)}` }, "unknown"],
    ["another scheme", { authorization: `Basic ${keyA}` }, "malformed"],
    ["the key without a scheme", { authorization: keyA }, "malformed"],
    ["an empty bearer", { authorization: "Bearer " }, "malformed"],
    ["a key with a space", { "x-api-key": `${keyA} x` }, "malformed"],
    ["a key far too long", { "x-api-key": "k".repeat(10_000) }, "malformed"],
    ["the key in another header", { "api-key": keyA }, "missing"],
    ["an expired key", { "x-api-key": expiredKey }, "expired"],
    ["a disabled key", { "x-api-key": disabledKey }, "disabled"],
    // authorization wins: a wrong bearer is not rescued by a right x-api-key.
    ["a wrong bearer beside a right x-api-key", { authorization: "Bearer wrong", "x-api-key": keyA }, "unknown"],
  ])("refuses %s", (_name, h, refusal) => {
    expect(settled(auth.authenticate(headers(h), loopback))).toMatchObject({ identity: undefined, refusal });
  });

  it("refuses a tenant's key from outside its allowFrom ranges (IPv4-mapped addresses match as IPv4)", () => {
    const h = headers({ "x-api-key": keyB });
    expect(settled(auth.authenticate(h, peer("10.9.9.9"))).identity?.tenant).toBe("team-b");
    expect(settled(auth.authenticate(h, peer("::ffff:10.9.9.9"))).identity?.tenant).toBe("team-b");
    expect(settled(auth.authenticate(h, peer("192.168.1.1")))).toMatchObject({ refusal: "address", tenant: "team-b" });
    expect(settled(auth.authenticate(h, peer(undefined)))).toMatchObject({ refusal: "address" });
    expect(settled(auth.authenticate(h, undefined))).toMatchObject({ refusal: "address" });
  });

  it("auth.allowFrom applies to every call, anonymous ones too", () => {
    const anon = createAuthenticator(
      parseConfig(
        {
          providers: { demo: { type: "demo" } },
          models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
          auth: { allowFrom: ["127.0.0.0/8", "::1"] },
        },
        {},
      ),
    );
    expect(anon.enabled).toBe(true);
    expect(anon.required).toBe(false);
    expect(settled(anon.authenticate(headers({}), peer("127.0.0.1"))).identity?.method).toBe("anonymous");
    expect(settled(anon.authenticate(headers({}), peer("::1"))).identity?.method).toBe("anonymous");
    expect(settled(anon.authenticate(headers({}), peer("10.0.0.1"))).refusal).toBe("address");
  });

  it("with no tenants and no allow-list there is nothing to check", () => {
    const none = createAuthenticator(
      parseConfig(
        { providers: { demo: { type: "demo" } }, models: { demo: { deployments: [{ provider: "demo", model: "m" }] } } },
        {},
      ),
    );
    expect(none.enabled).toBe(false);
  });
});

describe("configuration", () => {
  it("rejects a key listed for two tenants, a malformed hash and a bad range", () => {
    const hash = apiKeyHash(keyA);
    expect(() =>
      config({ tenants: { a: { apiKeys: [{ sha256: hash }], models: [] }, b: { apiKeys: [{ sha256: hash }], models: [] } } }),
    ).toThrow(/tenants\.b\.apiKeys\.0\.sha256.*already listed for tenant "a"/s);
    expect(() => config({ tenants: { a: { apiKeys: [{ sha256: hash.toUpperCase() }], models: [] } } })).toThrow(/sha256/);
    expect(() => config({ tenants: { a: { apiKeys: [], models: [], allowFrom: ["10.0.0.0/33"] } } })).toThrow(/allowFrom/);
    expect(() => config({ tenants: { a: { apiKeys: [] } } })).toThrow(/models/);
    expect(() =>
      config({
        models: {
          demo: {
            deployments: [{ provider: "demo", model: "m" }],
            routes: [{ match: { tenant: "nobody" }, deployments: ["demo/m"] }],
          },
        },
      }),
    ).toThrow(/models\.demo\.routes\.0\.match\.tenant.*unknown tenant "nobody"/s);
  });

  it("anonymous serving is refused beyond loopback unless auth.allowAnonymous says it is meant", () => {
    const anonymousConfig = (auth: Record<string, unknown> = {}) =>
      parseConfig(
        { providers: { demo: { type: "demo" } }, models: { demo: { deployments: [{ provider: "demo", model: "m" }] } }, auth },
        {},
      );
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) {
      expect(anonymousListenProblem(anonymousConfig(), host)).toBeUndefined();
    }
    for (const host of ["0.0.0.0", "::", "10.0.0.5"]) {
      expect(anonymousListenProblem(anonymousConfig(), host)).toMatch(/no authentication.*auth\.allowAnonymous/);
    }
    expect(anonymousListenProblem(anonymousConfig({ allowAnonymous: true }), "0.0.0.0")).toBeUndefined();
    expect(anonymousListenProblem(config(), "0.0.0.0")).toBeUndefined();
  });
});

describe("model access", () => {
  it("matches names and globs (* any run, ? one character); nothing else is special", () => {
    const access = createModelAccess(["gpt-4o*", "demo", "claude-?", "a.b"]);
    for (const yes of ["gpt-4o", "gpt-4o-mini", "demo", "claude-3", "a.b"]) expect(access.allows(yes), yes).toBe(true);
    for (const no of ["gpt-4", "xgpt-4o", "demo2", "claude-35", "aXb", "Demo", ""]) expect(access.allows(no), no).toBe(false);
    expect(createModelAccess([]).allows("demo")).toBe(false);
    expect(createModelAccess(["*"]).allows("anything\nat all")).toBe(true);
  });
});

describe("presented keys and network lists", () => {
  it("reads the bearer token first, then x-api-key", () => {
    expect(presentedKey(headers({}))).toBeUndefined();
    expect(presentedKey(headers({ authorization: "Bearer k1", "x-api-key": "k2" }))).toBe("k1");
    expect(presentedKey(headers({ "x-api-key": "k2" }))).toBe("k2");
    expect(presentedKey(headers({ "x-api-key": "" }))).toBe("");
  });

  it("IPv6 ranges", () => {
    const list = createNetworkAllowList(["fd00::/8", "2001:db8::1"]);
    expect(list.allows("fd12::5")).toBe(true);
    expect(list.allows("2001:db8::1")).toBe(true);
    expect(list.allows("2001:db8::2")).toBe(false);
    expect(list.allows("10.0.0.1")).toBe(false);
  });
});

describe("minted keys", () => {
  it("are random, prefixed, and their config line holds the hash that verifies them", () => {
    const a = mintApiKey("ci");
    const b = mintApiKey();
    expect(a.key).toMatch(/^sk-sluice-[A-Za-z0-9_-]{43}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.sha256).toBe(apiKeyHash(a.key));
    expect(a.configLine).toBe(`- { sha256: ${a.sha256}, id: ci }`);
    expect(b.configLine).toBe(`- { sha256: ${b.sha256} }`);
    const auth = createAuthenticator(config({ tenants: { t: { apiKeys: [{ sha256: a.sha256, id: "ci" }], models: ["*"] } } }));
    expect(settled(auth.authenticate(headers({ authorization: `Bearer ${a.key}` }), loopback)).identity?.tenant).toBe("t");
  });
});
