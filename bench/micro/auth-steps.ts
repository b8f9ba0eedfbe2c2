// What authenticating one call costs, per credential kind, on the hot path.
//
// Usage (from the repo root): npx tsx bench/micro/auth-steps.ts [--calls 50000] [--rounds 7]
//
// Each case runs the gateway's own authenticator (src/identity/authenticator.ts) built from
// a configuration with 50 tenants of 2 API keys each, a JWT issuer (ES256 and RS256 keys in a
// JWKS file) and a signing key per tenant — so lookups are among many, as in production. The
// headers are built once per case (building them is the lane's work, done with or without
// authentication); what is timed is `authenticate()` and the model check that follows it.
// Reported: CPU µs per call, median of the rounds (min–max).
//
// Cases:
//   API key (authorization: Bearer / x-api-key)  — SHA-256 of the key, one Map lookup, expiry check.
//   unknown API key                               — the same work, refused.
//   JWT, verified before (cached)                 — a Map lookup by the token's text and an expiry check.
//   JWT, first verification (ES256 / RS256)       — the signature check jose runs once per token.
//   signed request                                 — HMAC-SHA256 of the request line + the nonce store
//                                                    (the body's SHA-256 is the lane's, done while reading).
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { parseConfig } from "../../src/config/load-config.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type AuthOutcome, createAuthenticator } from "../../src/identity/authenticator.js";
import type { Peer } from "../../src/identity/peer.js";

const { values: args } = parseArgs({
  options: { calls: { type: "string", default: "50000" }, rounds: { type: "string", default: "7" } },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);

const issuer = "https://idp.bench.test";
const audience = "sluice";
const dir = mkdtempSync(join(tmpdir(), "sluice-auth-bench-"));
const es = await generateKeyPair("ES256");
const rs = await generateKeyPair("RS256");
const jwksFile = join(dir, "jwks.json");
writeFileSync(
  jwksFile,
  JSON.stringify({
    keys: [
      { ...(await exportJWK(es.publicKey)), kid: "es", alg: "ES256", use: "sig" },
      { ...(await exportJWK(rs.publicKey)), kid: "rs", alg: "RS256", use: "sig" },
    ],
  }),
);

const tenantCount = 50;
const keyOf = (tenant: number, n: number) => `sk-sluice-bench-${tenant}-${n}-${"x".repeat(32)}`;
const secretOf = (tenant: number) => `signing-secret-${tenant}-${"y".repeat(32)}`;
const tenants: Record<string, unknown> = {};
for (let t = 0; t < tenantCount; t++) {
  tenants[`team-${t}`] = {
    apiKeys: [0, 1].map((n) => ({ sha256: apiKeyHash(keyOf(t, n)), id: `key-${n}` })),
    signingKeys: [{ id: `signer-${t}`, secret: secretOf(t) }],
    models: ["gpt-4o*", "demo"],
  };
}
const config = parseConfig({
  providers: { demo: { type: "demo" } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
  tenants,
  auth: { jwt: { jwksFile, algorithms: ["ES256", "RS256"], issuer, audience } },
});

const peer: Peer = { remoteAddress: () => "127.0.0.1", bodySha256: () => bodySha256 };
const bodySha256 = createHash("sha256").update(randomBytes(2048)).digest("hex");
const request = { requestMethod: "POST", url: "http://127.0.0.1:8080/sluice.v1.ChatService/Complete" };

const jwt = (alg: "ES256" | "RS256") =>
  new SignJWT({ tenant: "team-7", sub: "svc-bench", jti: randomBytes(8).toString("hex") })
    .setProtectedHeader({ alg, kid: alg === "ES256" ? "es" : "rs" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(alg === "ES256" ? es.privateKey : rs.privateKey);

/** Fresh signing headers (a new nonce each): what a signed caller sends. */
function signedHeaders(): Headers {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("hex");
  const signature = createHmac("sha256", secretOf(7))
    .update(`POST\n/sluice.v1.ChatService/Complete\n${timestamp}\n${nonce}\n${bodySha256}`)
    .digest("hex");
  return new Headers({
    "x-sluice-key-id": "signer-7",
    "x-sluice-timestamp": timestamp,
    "x-sluice-nonce": nonce,
    "x-sluice-signature": signature,
  });
}

let sink = 0;
function consume(outcome: AuthOutcome): void {
  if (outcome.identity === undefined) sink ^= 1;
  else sink ^= outcome.identity.models.allows("demo") ? 2 : 4;
}

interface Case {
  readonly name: string;
  /** What one round needs made in advance (e.g. `calls` distinct tokens), outside the timing. */
  prepare(): Promise<Headers[]>;
  /** Whether authenticate() is awaited (a first JWT verification is asynchronous). */
  readonly async: boolean;
  /** A fresh authenticator per round (so a nonce store or JWT cache starts empty). */
  readonly freshPerRound: boolean;
}

const same = (headers: Headers) => async () => Array.from({ length: calls }, () => headers);
const cases: Case[] = [
  { name: "API key, authorization: Bearer", prepare: same(new Headers({ authorization: `Bearer ${keyOf(7, 1)}` })), async: false, freshPerRound: false },
  { name: "API key, x-api-key", prepare: same(new Headers({ "x-api-key": keyOf(7, 0) })), async: false, freshPerRound: false },
  { name: "unknown API key (refused)", prepare: same(new Headers({ authorization: `Bearer ${keyOf(7, 1)}z` })), async: false, freshPerRound: false },
  { name: "JWT ES256, verified before (cached)", prepare: async () => same(new Headers({ authorization: `Bearer ${await jwt("ES256")}` }))(), async: true, freshPerRound: false },
  {
    name: "JWT ES256, first verification",
    prepare: async () => Promise.all(Array.from({ length: Math.min(calls, 2000) }, async () => new Headers({ authorization: `Bearer ${await jwt("ES256")}` }))),
    async: true,
    freshPerRound: true,
  },
  {
    name: "JWT RS256, first verification",
    prepare: async () => Promise.all(Array.from({ length: Math.min(calls, 2000) }, async () => new Headers({ authorization: `Bearer ${await jwt("RS256")}` }))),
    async: true,
    freshPerRound: true,
  },
  { name: "signed request (HMAC + nonce)", prepare: async () => Array.from({ length: calls }, signedHeaders), async: false, freshPerRound: true },
];

function cpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

console.log(`node ${process.version}; ${tenantCount} tenants × 2 keys; median of ${rounds} rounds (min–max), CPU µs per call\n`);
console.log("| case | µs per call |\n| --- | --- |");
for (const c of cases) {
  let authenticator = createAuthenticator(config);
  const perCall: number[] = [];
  for (let round = -1; round < rounds; round++) {
    if (c.freshPerRound) {
      authenticator.close();
      authenticator = createAuthenticator(config);
    }
    const headers = await c.prepare();
    const start = cpuUs();
    for (const h of headers) {
      const outcome = authenticator.authenticate(h, peer, request);
      consume(c.async ? await outcome : (outcome as AuthOutcome));
    }
    // Round -1 warms up V8 (and fills a cache the "cached" case relies on).
    if (round >= 0) perCall.push((cpuUs() - start) / headers.length);
  }
  authenticator.close();
  perCall.sort((a, b) => a - b);
  const median = perCall[Math.floor(perCall.length / 2)]!;
  console.log(`| ${c.name} | ${median.toFixed(2)} (${perCall[0]!.toFixed(2)}–${perCall.at(-1)!.toFixed(2)}) |`);
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n(sink ${sink})`);
