// What admission costs per call (issue "limits"): CPU µs of `admit` + the end-of-call settlement,
// per case, on the realistic request (a system prompt and three turns, ~2 KB), in process and
// against a real Redis.
//
// Usage (from the repo root): npx tsx bench/micro/admission-steps.ts [--calls 20000] [--rounds 5] [--redis-url redis://127.0.0.1:6379]
// tsx keeps function names by wrapping every closure it creates (~1–3 µs more per call here); for the numbers
// production runs, bundle without that first:
//   node_modules/.bin/esbuild bench/micro/admission-steps.ts --bundle --platform=node --format=esm \
//     --packages=external --outfile=.admission-steps.mjs && node .admission-steps.mjs && rm .admission-steps.mjs
// Without --redis-url, a redis-server (Debian package) is started on a free loopback port if
// /usr/bin/redis-server exists; otherwise the Redis rows are left out.
//
// Cases (each: admit, then the settlement the access log triggers at the call's end):
//   no limits (tenant without limits)      — what every call of an unlimited tenant pays: a Map lookup + the ledger line.
//   requests/min + concurrency              — two sliding-window/slot charges, no token estimate.
//   + tokens/min + USD budget (cached)      — the prompt estimate with each message's count remembered (a conversation resends its turns).
//   + tokens/min + USD budget (new prompt)  — a prompt never seen: every message tokenized (o200k).
//   context-window check only               — an alias with a window and no limits: the upper bound decides.
// Redis rows: the same "requests/min + concurrency" and "+ tokens" cases, CPU per call and wall-clock
// latency of admit (one EVALSHA round trip; settlement and ledger are off the request path).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { parseConfig } from "../../src/config/load-config.js";
import type { Identity } from "../../src/identity/identity.js";
import { createModelAccess } from "../../src/identity/model-access.js";
import { createAdmission } from "../../src/limits/admission.js";
import { createTokenEstimator } from "../../src/limits/token-estimator.js";
import { createProviders } from "../../src/providers/create-providers.js";
import { createCallPlanner } from "../../src/routing/call-plan.js";
import { createModelCatalog } from "../../src/routing/model-catalog.js";
import { createMemoryState } from "../../src/state/memory-state.js";
import { createRedisState } from "../../src/state/redis-state.js";
import type { StateStore } from "../../src/state/state-store.js";
import { CallRecord } from "../../src/telemetry/call-record.js";
import { createLogger } from "../../src/telemetry/logger.js";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "20000" },
    rounds: { type: "string", default: "5" },
    "redis-url": { type: "string" },
  },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);

const system =
  "You are Atlas, the support assistant of a company that sells project-management software to small teams. " +
  "Answer in the customer's language, in at most five short paragraphs. Be precise and friendly; never invent " +
  "features, prices or dates. When the customer asks about billing, explain the plan limits (Free: 3 projects, " +
  "Team: 50 projects and 25 members, Business: unlimited projects, SSO and audit logs) and point to the billing page " +
  "for changes. When a question needs an account change you cannot make, say so and offer to open a ticket.";
const turns = [
  "Hi! We are a team of 12 on the Team plan. Since yesterday two colleagues cannot see the Q3 roadmap project, although they were invited last week. They get a 'You do not have access' page. What should we check?",
  "Sorry about that! The usual causes are: the invitation was accepted with another e-mail address; the project is private and they were added to the workspace but not to the project; their seat was released when the plan renewed.",
  "They are in the workspace members list but not in the project's Members tab. Also, can we make the roadmap visible to everyone in the workspace by default, and does that count against the 50-project limit?",
];
const request = (salt = "") =>
  create(CompleteRequestSchema, {
    model: "fast",
    maxOutputTokens: 512,
    messages: [
      { role: Role.SYSTEM, content: [{ part: { case: "text", value: system + salt } }] },
      ...turns.map((text, i) => ({
        role: i % 2 === 0 ? Role.USER : Role.ASSISTANT,
        content: [{ part: { case: "text" as const, value: text + salt } }],
      })),
    ],
  });

const huge = 1_000_000_000;
function configFor(state: Record<string, unknown>) {
  return parseConfig({
    state,
    providers: { demo: { type: "demo" } },
    models: {
      fast: { deployments: [{ provider: "demo", model: "m", price: { inputPerMillion: 0.15, outputPerMillion: 0.6 } }] },
      windowed: { contextWindow: 128_000, deployments: [{ provider: "demo", model: "w" }] },
    },
    tenants: {
      free: { models: ["*"] },
      rpm: { models: ["*"], limits: { requestsPerMinute: huge, concurrentRequests: huge } },
      tokens: {
        models: ["*"],
        limits: { requestsPerMinute: huge, concurrentRequests: huge, tokensPerMinute: huge },
        budget: { usdPerDay: huge },
      },
    },
  });
}

const identity = (tenant: string): Identity => ({ tenant, keyId: "bench", method: "api_key", models: createModelAccess(["*"]) });

async function measure(store: StateStore, tenant: string, alias: string, fresh: boolean): Promise<{ cpuUs: number; wallUs: number }> {
  const config = configFor(store.backend === "redis" ? { redis: { url: "redis://unused" } } : {});
  const providers = createProviders(config, { logger: createLogger({ level: "silent" }) });
  const catalog = createModelCatalog(config, providers);
  const planner = createCallPlanner(catalog);
  const route = catalog.resolve(alias);
  const admission = createAdmission({
    config,
    state: store,
    estimator: createTokenEstimator(),
    logger: createLogger({ level: "silent" }),
  });
  const who = identity(tenant);
  const cached = request();
  const results: { cpuUs: number; wallUs: number }[] = [];
  for (let round = -1; round < rounds; round++) {
    const requests = Array.from({ length: calls }, (_, i) => (fresh ? request(` #${round}.${i}`) : cached));
    const candidates = planner.plan(route, cached, () => undefined);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (const req of requests) {
      const record = new CallRecord("sluice.v1.ChatService/Complete", "connect", false, performance.now());
      const admitted = admission.admit({ request: req, route, candidates, identity: who, record, responseHeader: new Headers() });
      if (admitted instanceof Promise) await admitted;
      record.alias = alias;
      record.deployment = "demo/m";
      record.inputTokens = 200;
      record.outputTokens = 100;
      record.onEnd?.(record, false);
    }
    const cpu = process.cpuUsage(cpu0);
    if (round >= 0) {
      results.push({ cpuUs: (cpu.user + cpu.system) / calls, wallUs: ((performance.now() - wall0) * 1000) / calls });
    }
  }
  admission.close();
  await Promise.all([...providers.values()].map((p) => p.close()));
  results.sort((a, b) => a.cpuUs - b.cpuUs);
  return results[Math.floor(results.length / 2)]!;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; stop(): void } | undefined> {
  if (args["redis-url"] !== undefined) return { url: args["redis-url"], stop() {} };
  if (!existsSync("/usr/bin/redis-server")) return undefined;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-redis-"));
  const child = spawn("/usr/bin/redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: "ignore",
  });
  const url = `redis://127.0.0.1:${port}`;
  return {
    url,
    stop() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const rows: [string, string, { cpuUs: number; wallUs: number }][] = [];
const memoryCases: [string, string, string, boolean][] = [
  ["no limits (tenant without limits)", "free", "fast", false],
  ["requests/min + concurrency", "rpm", "fast", false],
  ["+ tokens/min + USD budget (cached prompt)", "tokens", "fast", false],
  ["+ tokens/min + USD budget (new prompt)", "tokens", "fast", true],
  ["context-window check only", "free", "windowed", false],
];
for (const [name, tenant, alias, fresh] of memoryCases) rows.push(["memory", name, await measure(createMemoryState(), tenant, alias, fresh)]);

const redis = await startRedis();
if (redis !== undefined) {
  const store = createRedisState(
    { url: redis.url, keyPrefix: `bench-${process.pid}:`, timeoutMs: 1000, failMode: "open" },
    { logger: createLogger({ level: "silent" }) },
  );
  // Wait for the connection (the store answers health "ok" once ready).
  for (let i = 0; i < 200 && store.health().status !== "ok"; i++) await new Promise((r) => setTimeout(r, 10));
  for (const [name, tenant] of [
    ["requests/min + concurrency", "rpm"],
    ["+ tokens/min + USD budget (cached prompt)", "tokens"],
  ] as const) {
    rows.push(["redis", name, await measure(store, tenant, "fast", false)]);
  }
  await store.close();
  redis.stop();
}

console.log(`node ${process.version}; realistic request (~2 KB); median of ${rounds} rounds × ${calls} calls\n`);
console.log("| state | case | CPU µs per call (admit + settle) | wall µs per call |\n| --- | --- | --- | --- |");
for (const [state, name, { cpuUs, wallUs }] of rows) console.log(`| ${state} | ${name} | ${cpuUs.toFixed(2)} | ${wallUs.toFixed(1)} |`);
process.exit(0);
