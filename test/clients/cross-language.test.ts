import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../helpers/fake-upstream.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { completion } from "../helpers/openai-wire.js";
import { startSluice } from "../helpers/start-sluice.js";
import { buildClient, type BuiltClient } from "./client-builds.js";
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
 * MODEL_NOT_ALLOWED; ListModels lists only the tenant's model. Each client exits non-zero
 * naming the failed check; its output is shown here when it does.
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
let provider: FakeUpstream | undefined;
const builds = new Map<ClientName, PromiseSettledResult<BuiltClient>>();

beforeAll(async () => {
  if (runnable.length === 0) return;
  // Builds (cached in test/clients/.build) and servers start together; a failed build
  // fails only its own client's test.
  provider = await startFakeUpstream(() => completion("traced answer"));
  const [settled, started] = await Promise.all([
    Promise.allSettled(runnable.map((name) => buildClient(name))),
    Promise.allSettled([
      startSluice(),
      startSluice(slowConfig),
      startSluice(tracedConfig(provider.origin)),
      startSluice(keyedConfig),
    ]),
  ]);
  servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const [fast, slow, traced, keyed] = started;
  if (fast?.status !== "fulfilled") throw fast?.reason;
  if (slow?.status !== "fulfilled") throw slow?.reason;
  if (traced?.status !== "fulfilled") throw traced?.reason;
  if (keyed?.status !== "fulfilled") throw keyed?.reason;
  addr = `127.0.0.1:${fast.value.port}`;
  slowAddr = `127.0.0.1:${slow.value.port}`;
  tracedAddr = `127.0.0.1:${traced.value.port}`;
  keyedAddr = `127.0.0.1:${keyed.value.port}`;
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
      `${name}: ListModels, Complete, StreamComplete, NOT_FOUND with ErrorInfo, deadline, traceparent to the provider, API key`,
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
        const { file, args } = build.value.command({ addr, slowAddr, tracedAddr, traceparent, keyedAddr, apiKey });
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
        // The provider got the client's trace, with Sluice's attempt (not the client's span) as the parent.
        const received = receivedTraceparent(traceId);
        expect(received, `no request with trace ${traceId} reached the provider`).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        expect(received).not.toBe(traceparent);
      },
      clientRunTimeoutMs + 10_000,
    );
  }
});
