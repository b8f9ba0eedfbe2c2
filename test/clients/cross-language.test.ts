import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../helpers/fake-upstream.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { completion } from "../helpers/openai-wire.js";
import { createTestCa, type TestCa } from "../helpers/client-certs.js";
import { selfSignedCert, type SelfSignedCert } from "../helpers/self-signed-cert.js";
import { startSluice } from "../helpers/start-sluice.js";
import { buildClient, type BuiltClient, type ClientTargets } from "./client-builds.js";
import { clientNames, missingFor, run, type ClientName } from "./toolchains.js";

/**
 * Real gRPC clients in Go (grpc-go), Java (grpc-java, Netty) and Python (grpcio), generated
 * from proto/ with protoc and Debian's plugins, call a real Sluice over h2c: ListModels,
 * Complete, StreamComplete (start, deltas equal to the unary answer, done), NOT_FOUND with
 * google.rpc.ErrorInfo decoded from grpc-status-details-bin, a client deadline that cuts a
 * slow stream short, and a Complete carrying a W3C traceparent in its metadata, whose trace
 * the fake provider behind that gateway must receive. Against a gateway with one tenant, an
 * API key in the call's metadata (`authorization: Bearer KEY`): accepted for the tenant's
 * model; missing or wrong, UNAUTHENTICATED; another model, PERMISSION_DENIED with ErrorInfo
 * MODEL_NOT_ALLOWED; ListModels lists only the tenant's model. Against a gateway over TLS
 * that asks for client certificates, the other credential kinds: a JWT (accepted; expired,
 * UNAUTHENTICATED; another model, PERMISSION_DENIED), a client certificate from the
 * configured CA (accepted; one from another CA, UNAUTHENTICATED), and a signed request
 * (accepted; replayed or stale, UNAUTHENTICATED), each client signing the gRPC body it sends.
 * Each client exits non-zero naming the failed check; its output is shown here when it does.
 *
 * The toolchains come from Debian packages (.ci/run installs them). Under CI=true a
 * missing one fails its client's test, naming what is missing; elsewhere that client is
 * skipped with the same plain message, and the others still run.
 */

const inCI = process.env["CI"] === "true";
const clientRunTimeoutMs = 60_000;

/** Demo answers are ~40 words: ~4 s at 100 ms a word, against the clients' 1 s deadline. */
const slowConfig = {
  providers: { demo: { type: "demo", wordDelayMs: 100 } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
};

/** A gateway whose model "traced" calls a fake OpenAI-compatible provider over HTTP, which records the traceparent. */
const tracedConfig = (origin: string) => ({
  providers: { fake: { type: "openai", baseUrl: `${origin}/v1`, apiKey: "sk-cross-language" } },
  models: { traced: { deployments: [{ provider: "fake", model: "gpt-4o" }] } },
});

/** Minted per run as Sluice mints keys (32 random bytes, base64url); the gateway holds only its hash. */
const apiKey = `sk-sluice-${randomBytes(32).toString("base64url")}`;

/** One tenant, whose key may call "demo" but not "other". */
const keyedConfig = {
  providers: { demo: { type: "demo", wordDelayMs: 0 } },
  models: {
    demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    other: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
  },
  tenants: { "cross-language": { apiKeys: [{ sha256: apiKeyHash(apiKey), id: "clients" }], models: ["demo"] } },
};

const jwtIssuer = "https://idp.cross-language.test";
const jwtAudience = "sluice";
const signingKeyId = "cross-language-signer";
const signingSecret = randomBytes(32).toString("base64url");

/**
 * TLS with client certificates, JWTs from a JWKS file and a signing key: three tenants, one
 * per credential kind, each allowed "demo" only.
 */
const securedConfig = (tls: SelfSignedCert, clientCa: TestCa, jwksFile: string) => ({
  providers: { demo: { type: "demo", wordDelayMs: 0 } },
  models: {
    demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    other: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
  },
  server: { tls: { certFile: tls.certFile, keyFile: tls.keyFile, clientCaFile: clientCa.certFile } },
  auth: { jwt: { jwksFile, algorithms: ["ES256"], issuer: jwtIssuer, audience: jwtAudience } },
  tenants: {
    "jwt-team": { models: ["demo"] },
    "cert-team": { models: ["demo"], mtls: { uris: ["spiffe://cross-language.test/client"] } },
    "signed-team": { models: ["demo"], signingKeys: [{ id: signingKeyId, secret: signingSecret }] },
  },
});

/** What the secured gateway's clients present, minted for this run. */
interface Credentials {
  readonly dir: string;
  readonly tls: SelfSignedCert;
  readonly clientCa: TestCa;
  readonly foreignCa: TestCa;
  readonly jwksFile: string;
  readonly targets: Omit<
    ClientTargets,
    "addr" | "slowAddr" | "tracedAddr" | "traceparent" | "keyedAddr" | "apiKey" | "secureAddr"
  >;
}

async function mintCredentials(): Promise<Credentials> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cross-language-"));
  const tls = selfSignedCert();
  const clientCa = createTestCa("cross-language-clients");
  const foreignCa = createTestCa("someone-else");
  const client = clientCa.issueClient("client", "cross-language-client", "spiffe://cross-language.test/client");
  const foreign = foreignCa.issueClient("foreign", "cross-language-client", "spiffe://cross-language.test/client");
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" }] }));
  const now = Math.floor(Date.now() / 1000);
  const jwt = (iat: number, exp: number) =>
    new SignJWT({ tenant: "jwt-team", sub: "cross-language" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(jwtIssuer)
      .setAudience(jwtAudience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(privateKey);
  return {
    dir,
    tls,
    clientCa,
    foreignCa,
    jwksFile,
    targets: {
      caFile: tls.certFile,
      clientCert: client.certFile,
      clientKey: client.keyFile,
      foreignCert: foreign.certFile,
      foreignKey: foreign.keyFile,
      jwt: await jwt(now, now + 3600),
      // Expired an hour ago: far beyond the 30 s clock tolerance.
      expiredJwt: await jwt(now - 7200, now - 3600),
      signingKeyId,
      signingSecret,
    },
  };
}

const missing = new Map<ClientName, string[]>(
  await Promise.all(clientNames.map(async (name) => [name, await missingFor(name)] as const)),
);
const runnable = clientNames.filter((name) => missing.get(name)?.length === 0);
for (const name of clientNames) {
  const lacking = missing.get(name) ?? [];
  if (lacking.length > 0 && !inCI) {
    console.warn(`cross-language ${name} client SKIPPED: this machine lacks ${lacking.join(", ")}`);
  }
}

let servers: Array<Awaited<ReturnType<typeof startSluice>>> = [];
let addr = "";
let slowAddr = "";
let tracedAddr = "";
let keyedAddr = "";
let secureAddr = "";
let credentials: Credentials | undefined;
let provider: FakeUpstream | undefined;
const builds = new Map<ClientName, PromiseSettledResult<BuiltClient>>();

beforeAll(async () => {
  if (runnable.length === 0) return;
  // Builds (cached in test/clients/.build) and servers start together; a failed build
  // fails only its own client's test.
  provider = await startFakeUpstream(() => completion("traced answer"));
  credentials = await mintCredentials();
  const [settled, started] = await Promise.all([
    Promise.allSettled(runnable.map((name) => buildClient(name))),
    Promise.allSettled([
      startSluice(),
      startSluice(slowConfig),
      startSluice(tracedConfig(provider.origin)),
      startSluice(keyedConfig),
      startSluice(securedConfig(credentials.tls, credentials.clientCa, credentials.jwksFile)),
    ]),
  ]);
  servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const [fast, slow, traced, keyed, secured] = started;
  if (fast?.status !== "fulfilled") throw fast?.reason;
  if (slow?.status !== "fulfilled") throw slow?.reason;
  if (traced?.status !== "fulfilled") throw traced?.reason;
  if (keyed?.status !== "fulfilled") throw keyed?.reason;
  if (secured?.status !== "fulfilled") throw secured?.reason;
  addr = `127.0.0.1:${fast.value.port}`;
  slowAddr = `127.0.0.1:${slow.value.port}`;
  tracedAddr = `127.0.0.1:${traced.value.port}`;
  keyedAddr = `127.0.0.1:${keyed.value.port}`;
  secureAddr = `127.0.0.1:${secured.value.port}`;
  const timings: string[] = [];
  runnable.forEach((name, i) => {
    const result = settled[i]!;
    builds.set(name, result);
    if (result.status === "fulfilled") {
      timings.push(`${name} ${result.value.built ? "built" : "cached"} in ${(result.value.ms / 1000).toFixed(1)} s`);
    }
  });
  if (timings.length > 0) console.log(`cross-language clients: ${timings.join(", ")}`);
}, 300_000);

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await provider?.close();
  if (credentials !== undefined) {
    credentials.tls.remove();
    credentials.clientCa.remove();
    credentials.foreignCa.remove();
    rmSync(credentials.dir, { recursive: true, force: true });
  }
});

/** The traceparent the provider received with the trace `traceId`, if it did. */
function receivedTraceparent(traceId: string): string | undefined {
  return provider?.requests
    .map((request) => String(request.headers["traceparent"] ?? ""))
    .find((traceparent) => traceparent.startsWith(`00-${traceId}-`));
}

describe.concurrent("real gRPC clients over h2c", () => {
  for (const name of clientNames) {
    it(
      `${name}: ListModels, Complete, StreamComplete, NOT_FOUND with ErrorInfo, deadline, traceparent to the provider, API key, JWT, client certificate, signed request`,
      async (ctx) => {
        const lacking = missing.get(name) ?? [];
        if (lacking.length > 0) {
          const what = `the ${name} client cannot be built: missing ${lacking.join(", ")}`;
          if (inCI) throw new Error(`${what}. Under CI=true every client must run; .ci/run installs these packages.`);
          ctx.skip(`${what} (skipped outside CI)`);
        }
        const build = builds.get(name);
        if (build === undefined) throw new Error(`the ${name} client was not built`);
        if (build.status === "rejected") throw build.reason;

        // Each client its own trace, so the concurrent runs are told apart at the provider.
        const traceId = randomBytes(16).toString("hex");
        const spanId = randomBytes(8).toString("hex");
        const traceparent = `00-${traceId}-${spanId}-01`;
        if (credentials === undefined) throw new Error("the credentials were not minted");
        const { file, args } = build.value.command({
          addr,
          slowAddr,
          tracedAddr,
          traceparent,
          keyedAddr,
          apiKey,
          secureAddr,
          ...credentials.targets,
        });
        const result = await run(file, args, { timeoutMs: clientRunTimeoutMs });
        const output = [
          `$ ${file} ${args.join(" ")}`,
          `exit: ${result.timedOut ? `killed after ${clientRunTimeoutMs} ms` : (result.code ?? result.signal)}`,
          `--- stdout\n${result.stdout}--- stderr\n${result.stderr}`,
        ].join("\n");
        expect(result.code, output).toBe(0);
        expect(result.stdout, output).toContain(`${name} client: ok:`);
        // The API key checks ran (a client exits non-zero when one fails).
        expect(result.stdout, output).toContain(
          "api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, ListModels scoped",
        );
        // The other credential kinds, over TLS.
        expect(result.stdout, output).toContain(
          "credentials: jwt accepted+expired UNAUTHENTICATED+other PERMISSION_DENIED, " +
            "client cert accepted+none UNAUTHENTICATED+foreign UNAUTHENTICATED, " +
            "signed accepted+replayed UNAUTHENTICATED+stale UNAUTHENTICATED",
        );
        // The provider got the client's trace, with Sluice's attempt (not the client's span) as the parent.
        const received = receivedTraceparent(traceId);
        expect(received, `no request with trace ${traceId} reached the provider`).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        expect(received).not.toBe(traceparent);
      },
      clientRunTimeoutMs + 10_000,
    );
  }
});
