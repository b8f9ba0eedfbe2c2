import { createHash } from "node:crypto";
// Starting the processes under test: the fake upstream (load core), and the proxies — the
// bare pass-through, Sluice and Portkey — each pinned to the proxy core.
import { createServer } from "node:net";
import { request } from "node:http";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jsonLine, startServer } from "../lib/processes.mjs";

const SRC_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const BENCH_DIR = join(SRC_DIR, "..");
/** The Sluice checkout under test: this repo, or another checkout/worktree via SLUICE_DIR (before/after comparisons). */
export const MAIN_DIR = process.env.SLUICE_DIR ? resolve(process.env.SLUICE_DIR) : join(BENCH_DIR, "..");
export const SLUICE_ENTRY = join(MAIN_DIR, "dist", "src", "main.js");
const PORTKEY_ENTRY = join(BENCH_DIR, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");

/**
 * The node flags Sluice's `npm start` runs with (its V8 heap settings), read from the start script of the checkout
 * under test, so the bench measures Sluice as it ships. Every Node proxy gets the same flags — the pass-through and
 * Portkey too — so a ratio between them measures the proxies, not GC tuning.
 */
export function runtimeFlags(mainDir = MAIN_DIR) {
  const start = JSON.parse(readFileSync(join(mainDir, "package.json"), "utf8")).scripts?.start ?? "";
  const words = start.trim().split(/\s+/);
  if (words[0] !== "node") return [];
  return words.slice(1).filter((word) => word.startsWith("--"));
}
const RUNTIME_FLAGS = runtimeFlags();

/** A free loopback port (bind to 0, read, close; the short race is acceptable on loopback). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Ready as soon as the URL answers HTTP at all (any status): for servers that log nothing we can wait on. */
function answersHttp(url) {
  return new Promise((resolve) => {
    const req = request(url, { method: "GET", agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once("error", () => resolve(false));
    req.once("timeout", () => req.destroy());
    req.end();
  });
}

export async function startFake({ cpu }) {
  const server = await startServer({
    name: "fake-upstream",
    command: process.execPath,
    args: [join(SRC_DIR, "servers", "fake-upstream.mjs")],
    cpu,
    ready: jsonLine("fake listening"),
  });
  return { ...server, url: server.ready.url, h2Url: server.ready.h2Url };
}

export async function startPassThrough({ cpu, upstreamUrl, nodeArgs = [] }) {
  const server = await startServer({
    name: "pass-through",
    command: process.execPath,
    args: [...RUNTIME_FLAGS, ...nodeArgs, join(SRC_DIR, "servers", "pass-through.mjs"), "--upstream", upstreamUrl],
    cpu,
    cwd: BENCH_DIR,
    ready: jsonLine("pass-through listening"),
  });
  return { ...server, url: server.ready.url, h2Url: server.ready.h2Url };
}

export async function startPortkey({ cpu, nodeArgs = [] }) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = await startServer({
    name: "portkey",
    command: process.execPath,
    args: [
      ...RUNTIME_FLAGS,
      ...nodeArgs,
      "--import",
      join(SRC_DIR, "servers", "portkey-loopback.mjs"),
      PORTKEY_ENTRY,
      "--headless",
      `--port=${port}`,
    ],
    cpu,
    cwd: BENCH_DIR,
    ready: (line) => (line.includes("Ready for connections") ? true : undefined),
    probe: () => answersHttp(url),
  });
  return { ...server, url };
}

/**
 * The API key every Sluice target presents (`authorization: Bearer`). With `--sluice-auth key`
 * (the default) the gateway has one tenant holding its hash, as a production gateway has
 * tenants; with `off` it has none and serves the same requests anonymously (the key is ignored).
 */
export const BENCH_API_KEY = `sk-sluice-bench-${"0".repeat(43)}`;

/** Sluice's configuration for a run: one OpenAI provider (the fake), one alias per workload, and the bench tenant. */
export function writeSluiceConfig(dir, fakeUrl, workloadList, logLevel, auth = "key", extra = {}, name = "sluice.yaml") {
  const models = {};
  for (const workload of workloadList) {
    models[workload.alias] = { deployments: [{ provider: "fake", model: workload.model }] };
  }
  const config = {
    listen: "127.0.0.1:0",
    // The access log writes one line per request at info (the default); the bench discards stdout.
    log: { level: logLevel },
    providers: {
      // connections: enough for the capacity scenario's 10k concurrent upstream streams.
      fake: { type: "openai", baseUrl: `${fakeUrl}/v1`, apiKey: "bench", connections: 16384 },
    },
    models,
    ...extra,
    ...(auth === "key"
      ? {
          tenants: {
            bench: {
              apiKeys: [{ sha256: createHash("sha256").update(BENCH_API_KEY).digest("hex"), id: "bench" }],
              models: Object.keys(models),
            },
          },
        }
      : {}),
  };
  const path = join(dir, name);
  // JSON is valid YAML: no YAML writer needed.
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

/** The OTLP/HTTP sink a traced Sluice exports its spans to (on the load core, like the fake). */
export async function startOtlpSink({ cpu }) {
  const server = await startServer({
    name: "otlp-sink",
    command: process.execPath,
    args: [join(SRC_DIR, "servers", "otlp-sink.mjs")],
    cpu,
    ready: jsonLine("otlp sink listening"),
  });
  return { ...server, url: server.ready.url };
}

/** What a Sluice with span export on at 100% gets in its environment: the standard OTEL_* variables. */
export function tracedSluiceEnv(sinkUrl) {
  return {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_TRACES_SAMPLER: "always_on",
  };
}

export async function startSluice({ cpu, configFile, nodeArgs = [], env = {} }) {
  if (!existsSync(SLUICE_ENTRY)) throw new Error(`${SLUICE_ENTRY} not found (build failed or main.ts not there yet)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = await startServer({
    name: "sluice",
    command: process.execPath,
    args: [...RUNTIME_FLAGS, ...nodeArgs, SLUICE_ENTRY, "--config", configFile, "--listen", `127.0.0.1:${port}`],
    cpu,
    cwd: MAIN_DIR,
    env,
    ready: jsonLine("sluice listening"),
    // At log level warn the "listening" line may not be printed; the port answering is enough.
    probe: () => answersHttp(url),
  });
  return { ...server, url };
}
