import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSluice } from "../helpers/start-sluice.js";
import { buildClient, type BuiltClient } from "./client-builds.js";
import { clientNames, missingFor, run, type ClientName } from "./toolchains.js";

/**
 * Real gRPC clients in Go (grpc-go), Java (grpc-java, Netty) and Python (grpcio), generated
 * from proto/ with protoc and Debian's plugins, call a real Sluice over h2c: ListModels,
 * Complete, StreamComplete (start, deltas equal to the unary answer, done), NOT_FOUND with
 * google.rpc.ErrorInfo decoded from grpc-status-details-bin, and a client deadline that
 * cuts a slow stream short. Each client exits non-zero naming the failed check; its output
 * is shown here when it does.
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
const builds = new Map<ClientName, PromiseSettledResult<BuiltClient>>();

beforeAll(async () => {
  if (runnable.length === 0) return;
  // Builds (cached in test/clients/.build) and servers start together; a failed build
  // fails only its own client's test.
  const [settled, started] = await Promise.all([
    Promise.allSettled(runnable.map((name) => buildClient(name))),
    Promise.allSettled([startSluice(), startSluice(slowConfig)]),
  ]);
  servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const [fast, slow] = started;
  if (fast?.status !== "fulfilled") throw fast?.reason;
  if (slow?.status !== "fulfilled") throw slow?.reason;
  addr = `127.0.0.1:${fast.value.port}`;
  slowAddr = `127.0.0.1:${slow.value.port}`;
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
});

describe.concurrent("real gRPC clients over h2c", () => {
  for (const name of clientNames) {
    it(
      `${name}: ListModels, Complete, StreamComplete, NOT_FOUND with ErrorInfo, deadline`,
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

        const { file, args } = build.value.command(addr, slowAddr);
        const result = await run(file, args, { timeoutMs: clientRunTimeoutMs });
        const output = [
          `$ ${file} ${args.join(" ")}`,
          `exit: ${result.timedOut ? `killed after ${clientRunTimeoutMs} ms` : (result.code ?? result.signal)}`,
          `--- stdout\n${result.stdout}--- stderr\n${result.stderr}`,
        ].join("\n");
        expect(result.code, output).toBe(0);
        expect(result.stdout, output).toContain(`${name} client: ok:`);
      },
      clientRunTimeoutMs + 10_000,
    );
  }
});
