import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../config/load-config.js";
import type { SluiceConfig } from "../config/schema.js";
import { apiKeyHash } from "./api-keys.js";
import { type AuthOutcome, type Authenticator, createAuthenticator } from "./authenticator.js";
import { bearerJwt } from "./jwt-bearer.js";
import { createJwtKeySet, type JwtKeySet } from "./jwt-key-set.js";
import { createJwtVerifier } from "./jwt-verifier.js";

const issuer = "https://idp.example.com/";
const audience = "sluice";
const apiKey = "sk-sluice-team-a-0123456789abcdefghijklmnop";
const nowMs = Date.parse("2026-12-04T12:00:00Z");
const nowSec = nowMs / 1_000;

interface Pair {
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

let dir: string;
let rsa: Pair;
let ec: Pair;
let rsaNext: Pair;
let attacker: Pair;
const opened: Authenticator[] = [];

async function publicJwk(pair: Pair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" };
}

/** Writes a JWKS the way keys are rotated: a new file renamed over the old one. */
function writeJwks(path: string, keys: JWK[]): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify({ keys }));
  renameSync(temporary, path);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-jwt-"));
  [rsa, ec, rsaNext, attacker] = await Promise.all([
    generateKeyPair("RS256"),
    generateKeyPair("ES256"),
    generateKeyPair("RS256"),
    generateKeyPair("RS256"),
  ]);
});

afterAll(() => {
  for (const auth of opened) auth.close();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
/** A JWKS file with the RSA key "rsa-1" and the EC key "ec-1". */
async function jwksFile(): Promise<string> {
  const path = join(dir, `jwks-${++files}.json`);
  writeJwks(path, [await publicJwk(rsa, "rsa-1", "RS256"), await publicJwk(ec, "ec-1", "ES256")]);
  return path;
}

function config(jwt: Record<string, unknown>): SluiceConfig {
  return parseConfig(
    {
      providers: { demo: { type: "demo" } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
      tenants: {
        "team-a": { apiKeys: [{ sha256: apiKeyHash(apiKey), id: "ci" }], models: ["demo"] },
        "team-b": { models: ["claude-*"], allowFrom: ["10.0.0.0/8"] },
      },
      auth: { jwt: { algorithms: ["RS256", "ES256"], issuer, audience, ...jwt } },
    },
    {},
  );
}

function authenticator(jwt: Record<string, unknown>, deps: Parameters<typeof createAuthenticator>[1] = {}): Authenticator {
  const auth = createAuthenticator(config(jwt), { now: () => nowMs, ...deps });
  opened.push(auth);
  return auth;
}

interface Claims {
  readonly [claim: string]: unknown;
}

interface SignOptions {
  readonly key?: CryptoKey | Uint8Array;
  readonly alg?: string;
  readonly kid?: string;
  /** Claims over the defaults (tenant team-a, sub svc-1, iss, aud, iat now, exp in 10 minutes); undefined drops one. */
  readonly claims?: Claims;
}

async function sign(options: SignOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = {
    tenant: "team-a",
    sub: "svc-1",
    iss: issuer,
    aud: audience,
    iat: nowSec,
    exp: nowSec + 600,
    ...options.claims,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? "RS256", kid: options.kid ?? "rsa-1" })
    .sign(options.key ?? rsa.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const bearer = (token: string) => new Headers({ authorization: `Bearer ${token}` });
const peer = (address: string) => ({ remoteAddress: () => address });
const loopback = peer("127.0.0.1");

async function outcome(auth: Authenticator, token: string, from = loopback): Promise<AuthOutcome> {
  return auth.authenticate(bearer(token), from);
}

describe("JWT authentication", () => {
  let auth: Authenticator;
  beforeAll(async () => {
    auth = authenticator({ jwksFile: await jwksFile() });
  });

  it("a valid token (RS256 or ES256) names its tenant, with its subject as the key id", async () => {
    for (const token of [await sign(), await sign({ alg: "ES256", kid: "ec-1", key: ec.privateKey })]) {
      const { identity, refusal } = await outcome(auth, token);
      expect(refusal).toBeUndefined();
      expect(identity).toMatchObject({ tenant: "team-a", keyId: "svc-1", method: "jwt" });
      expect(identity?.models.allows("demo")).toBe(true);
      expect(identity?.models.allows("claude-3")).toBe(false);
    }
    // Longer than any API key may be: read as a JWT, not refused as a malformed key.
    expect((await sign()).length).toBeGreaterThan(512);
  });

  it("without the key-id claim the key id is 'jwt'; a configured claim can name the tenant", async () => {
    expect((await outcome(auth, await sign({ claims: { sub: undefined } }))).identity?.keyId).toBe("jwt");
    const byOrg = authenticator({ jwksFile: await jwksFile(), tenantClaim: "org", keyIdClaim: "client_id" });
    const token = await sign({ claims: { tenant: undefined, org: "team-a", client_id: "batch" } });
    expect((await outcome(byOrg, token)).identity).toMatchObject({ tenant: "team-a", keyId: "batch" });
  });

  it("allows the configured clock skew on exp and nbf", async () => {
    expect((await outcome(auth, await sign({ claims: { exp: nowSec - 20 } }))).refusal).toBeUndefined();
    expect((await outcome(auth, await sign({ claims: { nbf: nowSec + 20 } }))).refusal).toBeUndefined();
  });

  it.each<[string, () => Promise<string>, string]>([
    ["an expired token", () => sign({ claims: { exp: nowSec - 60 } }), "jwt_expired"],
    ["a token not yet valid", () => sign({ claims: { nbf: nowSec + 120 } }), "jwt_not_yet_valid"],
    ["the wrong issuer", () => sign({ claims: { iss: "https://evil.example.com/" } }), "jwt_claims"],
    ["the wrong audience", () => sign({ claims: { aud: "someone-else" } }), "jwt_claims"],
    ["no exp", () => sign({ claims: { exp: undefined } }), "jwt_claims"],
    ["the wrong signature (another key, the right kid)", () => sign({ key: attacker.privateKey }), "jwt_invalid"],
    [
      "a payload swapped under a valid signature",
      async () => {
        const [header, , signature] = (await sign()).split(".");
        return `${header}.${b64({ tenant: "team-b", iss: issuer, aud: audience, exp: nowSec + 600 })}.${signature}`;
      },
      "jwt_invalid",
    ],
    [
      "alg: none",
      async () =>
        `${b64({ alg: "none", kid: "rsa-1" })}.${b64({ tenant: "team-a", iss: issuer, aud: audience, exp: nowSec + 600 })}.`,
      "jwt_invalid",
    ],
    [
      "HS256 signed with the public key",
      async () => sign({ alg: "HS256", key: new TextEncoder().encode(await exportSPKI(rsa.publicKey)) }),
      "jwt_invalid",
    ],
    [
      "an algorithm not configured (RS384), with the right kid",
      async () => sign({ alg: "RS384", key: (await generateKeyPair("RS384")).privateKey }),
      "jwt_invalid",
    ],
    ["an unknown kid", () => sign({ key: attacker.privateKey, kid: "nobody" }), "jwt_unknown_key"],
    ["a tenant not configured", () => sign({ claims: { tenant: "team-z" } }), "jwt_tenant"],
    ["a tenant that is an object's own property", () => sign({ claims: { tenant: "constructor" } }), "jwt_tenant"],
    ["no tenant claim", () => sign({ claims: { tenant: undefined } }), "jwt_tenant"],
    ["a tenant claim that is not a string", () => sign({ claims: { tenant: ["team-a"] } }), "jwt_tenant"],
    ["three segments of garbage", async () => "abc.def.ghi", "jwt_invalid"],
  ])("refuses %s", async (_name, token, refusal) => {
    expect(await outcome(auth, await token())).toMatchObject({ identity: undefined, refusal });
  });

  it("the tenant's allowFrom applies to its tokens", async () => {
    const token = await sign({ claims: { tenant: "team-b" } });
    expect((await outcome(auth, token, peer("10.1.2.3"))).identity?.tenant).toBe("team-b");
    expect(await outcome(auth, token, peer("192.168.1.1"))).toMatchObject({ refusal: "address", tenant: "team-b" });
  });

  it("API keys work beside JWTs: a bearer not shaped like a JWT is an API key", async () => {
    const viaBearer = auth.authenticate(new Headers({ authorization: `Bearer ${apiKey}` }), loopback);
    expect(viaBearer).not.toBeInstanceOf(Promise);
    expect((viaBearer as AuthOutcome).identity).toMatchObject({ tenant: "team-a", keyId: "ci", method: "api_key" });
    expect(await outcome(auth, "sk-sluice-nobody")).toMatchObject({ refusal: "unknown" });
  });
});

describe("verified tokens are cached", () => {
  it("a token seen before is answered without a promise (no signature check) until it expires", async () => {
    let now = nowMs;
    const auth = authenticator({ jwksFile: await jwksFile() }, { now: () => now });
    const token = await sign();
    const first = auth.authenticate(bearer(token), loopback);
    expect(first).toBeInstanceOf(Promise);
    expect((await first).identity?.tenant).toBe("team-a");
    const second = auth.authenticate(bearer(token), loopback);
    expect(second).not.toBeInstanceOf(Promise);
    expect((second as AuthOutcome).identity).toBe((await first).identity);
    // The cached verification does not outlive exp (plus the 30 s tolerance).
    now = nowMs + 600_000 + 29_000;
    expect(auth.authenticate(bearer(token), loopback)).not.toBeInstanceOf(Promise);
    now = nowMs + 600_000 + 31_000;
    expect(await auth.authenticate(bearer(token), loopback)).toMatchObject({ refusal: "jwt_expired" });
  });

  it("is bounded: past cacheSize the oldest is forgotten; refusals are never cached", async () => {
    const auth = authenticator({ jwksFile: await jwksFile(), cacheSize: 2 });
    const tokens = await Promise.all(["a", "b", "c"].map((sub) => sign({ claims: { sub } })));
    for (const token of tokens) await auth.authenticate(bearer(token), loopback);
    expect(auth.authenticate(bearer(tokens[0]!), loopback)).toBeInstanceOf(Promise);
    expect(auth.authenticate(bearer(tokens[2]!), loopback)).not.toBeInstanceOf(Promise);
    const bad = await sign({ key: attacker.privateKey });
    await auth.authenticate(bearer(bad), loopback);
    expect(auth.authenticate(bearer(bad), loopback)).toBeInstanceOf(Promise);
  });

  it("concurrent first calls with one token share one verification", async () => {
    const path = await jwksFile();
    const verifier = createJwtVerifier(config({ jwksFile: path }).auth.jwt!, config({ jwksFile: path }).tenants, {
      now: () => nowMs,
    });
    try {
      const token = await sign();
      const a = verifier.verify(token);
      expect(verifier.verify(token)).toBe(a);
      expect(await a).toMatchObject({ tenant: "team-a" });
    } finally {
      verifier.close();
    }
  });
});

describe("a JWKS file", () => {
  it("is re-read when it changes: a new kid is taken, a removed key stops working at once (cache too)", async () => {
    const path = await jwksFile();
    let keySet: JwtKeySet | undefined;
    const auth = authenticator(
      { jwksFile: path },
      {
        jwtKeySet: (onChange) => {
          keySet = createJwtKeySet(config({ jwksFile: path }).auth.jwt!, { onChange });
          return keySet;
        },
      },
    );
    const old = await sign();
    const rotated = await sign({ key: rsaNext.privateKey, kid: "rsa-2" });
    expect((await outcome(auth, old)).identity?.tenant).toBe("team-a");
    expect(await outcome(auth, rotated)).toMatchObject({ refusal: "jwt_unknown_key" });
    expect(keySet!.check()).toBe(false); // unchanged: not re-read
    writeJwks(path, [await publicJwk(rsaNext, "rsa-2", "RS256")]);
    expect(keySet!.check()).toBe(true);
    expect((await outcome(auth, rotated)).identity?.tenant).toBe("team-a");
    // rsa-1 is gone: its token, verified (and cached) before, is refused now.
    expect(await outcome(auth, old)).toMatchObject({ refusal: "jwt_unknown_key" });
    // A file that stops reading keeps the keys read before.
    writeFileSync(path, "{ not json");
    expect(keySet!.check()).toBe(false);
    rmSync(path);
    expect(keySet!.check()).toBe(false);
    expect((await outcome(auth, await sign({ key: rsaNext.privateKey, kid: "rsa-2", claims: { sub: "x" } }))).refusal).toBe(
      undefined,
    );
  });

  it("is watched: a key rotated in by rename is picked up without a call to check()", async () => {
    const path = await jwksFile();
    const auth = authenticator({ jwksFile: path, refreshMs: 60_000 });
    const rotated = await sign({ key: rsaNext.privateKey, kid: "rsa-2" });
    expect(await outcome(auth, rotated)).toMatchObject({ refusal: "jwt_unknown_key" });
    writeJwks(path, [await publicJwk(rsa, "rsa-1", "RS256"), await publicJwk(rsaNext, "rsa-2", "RS256")]);
    const deadline = Date.now() + 10_000;
    while ((await outcome(auth, rotated)).refusal !== undefined) {
      if (Date.now() > deadline) throw new Error("the rotated JWKS file was not picked up within 10 s");
      await sleep(20);
    }
  });

  it("missing, not JSON or not a JWKS at startup: a configuration error naming the path", async () => {
    const notJson = join(dir, "not-json.json");
    writeFileSync(notJson, "{");
    const notJwks = join(dir, "not-jwks.json");
    writeFileSync(notJwks, JSON.stringify({ kty: "RSA" }));
    const missing = join(dir, "missing.json");
    for (const [path, why] of [
      [missing, /cannot be read \(ENOENT\)/],
      [notJson, /is not JSON/],
      [notJwks, /is not a JWKS/],
    ] as const) {
      let thrown: unknown;
      try {
        authenticator({ jwksFile: path });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as Error).message).toContain(`auth.jwt.jwksFile: ${path}`);
      expect((thrown as Error).message).toMatch(why);
    }
  });
});

describe("auth.jwt configuration", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["alg none", { jwksFile: "/k.json", algorithms: ["none"] }, /auth\.jwt\.algorithms\.0/],
    ["a shared-secret algorithm", { jwksFile: "/k.json", algorithms: ["HS256"] }, /auth\.jwt\.algorithms\.0/],
    ["no algorithms", { jwksFile: "/k.json", algorithms: [] }, /auth\.jwt\.algorithms/],
    ["both a file and a URL", { jwksFile: "/k.json", jwksUrl: "https://idp.example.com/jwks" }, /exactly one/],
    ["neither a file nor a URL", {}, /exactly one/],
    ["a URL that is not http(s)", { jwksUrl: "ftp://idp.example.com/jwks" }, /auth\.jwt\.jwksUrl.*http/],
    ["no issuer", { jwksFile: "/k.json", issuer: undefined }, /auth\.jwt\.issuer/],
    ["no audience", { jwksFile: "/k.json", audience: undefined }, /auth\.jwt\.audience/],
  ])("refuses %s", (_name, jwt, message) => {
    expect(() => config(jwt)).toThrow(message);
  });

  it("needs tenants for its tenant claim to name", () => {
    expect(() =>
      parseConfig(
        {
          providers: { demo: { type: "demo" } },
          models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
          auth: { jwt: { jwksFile: "/k.json", algorithms: ["RS256"], issuer, audience } },
        },
        {},
      ),
    ).toThrow(/auth\.jwt.*configure tenants/s);
  });

  it("has defaults for everything but the keys, algorithms, issuer and audience", () => {
    expect(config({ jwksUrl: "https://idp.example.com/jwks" }).auth.jwt).toEqual({
      jwksUrl: "https://idp.example.com/jwks",
      algorithms: ["RS256", "ES256"],
      issuer,
      audience,
      tenantClaim: "tenant",
      keyIdClaim: "sub",
      clockToleranceSec: 30,
      refreshMs: 60_000,
      cooldownMs: 30_000,
      cacheSize: 10_000,
    });
  });
});

describe("bearer JWTs", () => {
  it("are three base64url segments after Bearer; anything else is left to API keys", () => {
    const read = (authorization: string) => bearerJwt(new Headers({ authorization }));
    expect(read("Bearer aaa.bbb.ccc")).toBe("aaa.bbb.ccc");
    expect(read("bearer  aaa.bbb.")).toBe("aaa.bbb.");
    expect(read("Bearer sk-sluice-abc")).toBeUndefined();
    expect(read("Bearer aaa.bbb")).toBeUndefined();
    expect(read("Bearer aaa.bbb.ccc.ddd")).toBeUndefined();
    expect(read("Basic aaa.bbb.ccc")).toBeUndefined();
    expect(read(`Bearer ${"a".repeat(9_000)}.b.c`)).toBeUndefined();
    expect(bearerJwt(new Headers({ "x-api-key": "aaa.bbb.ccc" }))).toBeUndefined();
  });
});
