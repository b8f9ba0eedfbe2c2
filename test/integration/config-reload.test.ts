import { rename, writeFile } from "node:fs/promises";
import { Code, createClient } from "@connectrpc/connect";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ChatService, type CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import {
  connectJsonTransport,
  createGrpcJsClient,
  type GrpcJsClient,
  grpcWebTransport,
  toConnectError,
} from "../helpers/protocol-clients.js";
import { type SluiceProcess, spawnSluice, writeConfigFile } from "../helpers/sluice-process.js";
import { waitUntil } from "../helpers/wait-until.js";

/**
 * Issue 15, hot configuration reload: a real Sluice process (`--config FILE`) under
 * continuous concurrent load — Connect JSON, gRPC (grpc-js) and gRPC-Web, unary and
 * streaming — while its file is rewritten: a route weight, a provider key, tenants' keys and
 * a limit change, a provider is removed under its own in-flight streams, an invalid file is
 * rejected, SIGHUP reloads. No call of the load may fail; calls started after a reload see
 * the new settings.
 */

const keys = {
  load: "sk-reload-load-0123456789abcdef0123456789ab",
  limited: "sk-reload-limited-0123456789abcdef012345",
  added: "sk-reload-added-0123456789abcdef0123456789",
};
const tenant = (key: string, extra: Record<string, unknown> = {}) => ({
  apiKeys: [{ sha256: apiKeyHash(key), id: "k" }],
  models: ["*"],
  ...extra,
});

interface Settings {
  weights: [number, number];
  keyB: string;
  limitedRpm: number;
  added: boolean;
  limitedPresent: boolean;
  slow: boolean;
}

let upstreamA: FakeUpstream;
let upstreamB: FakeUpstream;
let upstreamSlow: FakeUpstream;

function document(s: Settings): Record<string, unknown> {
  return {
    log: { level: "info" },
    server: { drainTimeoutMs: 1_000 },
    providers: {
      a: { type: "openai", baseUrl: `${upstreamA.origin}/v1`, apiKey: "key-a1" },
      b: { type: "openai", baseUrl: `${upstreamB.origin}/v1`, apiKey: s.keyB },
      ...(s.slow ? { slow: { type: "openai", baseUrl: `${upstreamSlow.origin}/v1`, apiKey: "key-slow" } } : {}),
    },
    models: {
      chat: {
        strategy: "weighted",
        deployments: [
          { provider: "a", model: "m", weight: s.weights[0] },
          { provider: "b", model: "m", weight: s.weights[1] },
        ],
      },
      ...(s.slow ? { slow: { deployments: [{ provider: "slow", model: "m" }] } } : {}),
    },
    tenants: {
      load: tenant(keys.load),
      ...(s.limitedPresent ? { limited: tenant(keys.limited, { limits: { requestsPerMinute: s.limitedRpm } }) } : {}),
      ...(s.added ? { added: tenant(keys.added) } : {}),
    },
  };
}

type Ask = MessageInitShape<typeof CompleteRequestSchema>;
const ask = (model = "chat"): Ask => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hello" } }] }],
});
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

type Protocol = "connect" | "grpc-web" | "grpc";

/** One client per protocol; `complete` and `stream` throw a ConnectError on failure. */
interface Caller {
  readonly protocol: Protocol;
  complete(key: string, model?: string): Promise<void>;
  /** Reads the stream to its end; the count of content deltas. */
  stream(key: string, model?: string): Promise<number>;
  close(): void;
}

function connectCaller(url: string, protocol: "connect" | "grpc-web"): Caller {
  const transport = protocol === "connect" ? connectJsonTransport(url) : grpcWebTransport(url);
  const chat = createClient(ChatService, transport.transport);
  return {
    protocol,
    async complete(key, model) {
      await chat.complete(ask(model), { headers: bearer(key) });
    },
    async stream(key, model) {
      let deltas = 0;
      let done = false;
      for await (const event of chat.streamComplete(ask(model), { headers: bearer(key) })) {
        if (event.event.case === "delta") deltas++;
        if (event.event.case === "done") done = true;
      }
      if (!done) throw new Error("stream ended without done");
      return deltas;
    },
    close: () => transport.close(),
  };
}

function grpcCaller(url: string): Caller {
  const client: GrpcJsClient = createGrpcJsClient(url);
  return {
    protocol: "grpc",
    async complete(key, model) {
      try {
        await client.unary(ChatService.method.complete, ask(model), { metadata: bearer(key) });
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async stream(key, model) {
      let deltas = 0;
      let done = false;
      try {
        for await (const event of client.serverStream(ChatService.method.streamComplete, ask(model), {
          metadata: bearer(key),
        })) {
          if (event.event.case === "delta") deltas++;
          if (event.event.case === "done") done = true;
        }
      } catch (err) {
        throw toConnectError(err);
      }
      if (!done) throw new Error("stream ended without done");
      return deltas;
    },
    close: () => client.close(),
  };
}

/** Continuous load: `workers` loops, each alternating unary and streaming calls over its protocol. */
function startLoad(callers: readonly Caller[], workers: number) {
  let running = true;
  let completed = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: workers }, async (_, i) => {
    const caller = callers[i % callers.length]!;
    let n = 0;
    while (running) {
      try {
        if (n++ % 2 === 0) await caller.complete(keys.load);
        else await caller.stream(keys.load);
        completed++;
      } catch (err) {
        failures.push(`${caller.protocol}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  });
  return {
    get completed() {
      return completed;
    },
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe("hot configuration reload under load", () => {
  let sluice: SluiceProcess;
  let config: { file: string; remove(): Promise<void> };
  let callers: Caller[];
  let settings: Settings;

  const reloads = () => sluice.lines.filter((line) => line.includes('"msg":"configuration reloaded"')).length;
  const rejections = () => sluice.lines.filter((line) => line.includes('"msg":"configuration reload rejected')).length;

  /** Rewrites the file (as an editor does: a new file renamed over it, or in place) and waits for the reload line. */
  async function reconfigure(change: Partial<Settings>, how: "rename" | "write" = "rename"): Promise<void> {
    settings = { ...settings, ...change };
    const before = reloads();
    const text = JSON.stringify(document(settings), null, 1);
    if (how === "rename") {
      await writeFile(`${config.file}.tmp`, text);
      await rename(`${config.file}.tmp`, config.file);
    } else {
      await writeFile(config.file, text);
    }
    await waitUntil(() => reloads() > before, "the configuration reloaded", 10_000);
  }

  async function metric(name: string): Promise<number | undefined> {
    const response = await request(`${sluice.url}/metrics`);
    const text = await response.body.text();
    const escaped = name.replace(/[{}"=]/g, (c) => `\\${c}`);
    const value = new RegExp(`^${escaped} (\\S+)$`, "m").exec(text)?.[1];
    return value === undefined ? undefined : Number(value);
  }

  beforeAll(async () => {
    const answer = (chunkDelayMs: number, chunks: number) => (req: { body: unknown }) =>
      (req.body as { stream?: boolean } | undefined)?.stream === true
        ? streamOf(
            Array.from({ length: chunks }, (_, i) => `w${i} `),
            { delayBetweenChunksMs: chunkDelayMs },
          )
        : { ...completion("ok"), delayBeforeHeadersMs: 2 };
    upstreamA = await startFakeUpstream(answer(2, 4));
    upstreamB = await startFakeUpstream(answer(2, 4));
    upstreamSlow = await startFakeUpstream(answer(150, 8));
    settings = { weights: [1, 0], keyB: "key-b1", limitedRpm: 3, added: false, limitedPresent: true, slow: true };
    config = await writeConfigFile(document(settings));
    sluice = await spawnSluice(config.file);
    callers = [connectCaller(sluice.url, "connect"), connectCaller(sluice.url, "grpc-web"), grpcCaller(sluice.url)];
  });

  afterAll(async () => {
    for (const caller of callers ?? []) caller.close();
    await sluice?.stop();
    await config?.remove();
    await Promise.all([upstreamA, upstreamB, upstreamSlow].map((upstream) => upstream?.close()));
  });

  it("reloads weights, provider keys, tenants and limits with no failed call, and rejects an invalid file", async () => {
    const load = startLoad(callers, 24);
    try {
      await waitUntil(() => load.completed >= 60, "the load is running", 10_000);
      expect(upstreamA.requests.length).toBeGreaterThan(0);
      expect(upstreamB.requests.length).toBe(0);

      // The limited tenant uses up its 3 requests a minute.
      for (const caller of callers) await caller.complete(keys.limited);
      await expect(callers[0]!.complete(keys.limited)).rejects.toMatchObject({ code: Code.ResourceExhausted });

      // 1. A weight: traffic moves from a to b.
      await reconfigure({ weights: [0, 1] });
      await waitUntil(() => upstreamB.requests.length >= 20, "calls reach b", 10_000);
      const aAfter = upstreamA.requests.length;
      const done = load.completed;
      await waitUntil(() => load.completed >= done + 60, "more load after the reload", 10_000);
      expect(upstreamA.requests.length).toBe(aAfter);

      // 2. A provider key: calls after carry the new one.
      await reconfigure({ keyB: "key-b2" }, "write");
      const seenBefore = upstreamB.requests.length;
      for (const caller of callers) {
        await caller.complete(keys.load);
        await caller.stream(keys.load);
      }
      await waitUntil(() => upstreamB.requests.length >= seenBefore + 6, "probe calls reached b");
      const latest = upstreamB.requests.slice(-6).map((req) => req.headers.authorization);
      expect(new Set(latest)).toEqual(new Set(["Bearer key-b2"]));

      // 3. A tenant's limit: raised from 3 to 5 — the 3 already counted survive, 2 more pass.
      await reconfigure({ limitedRpm: 5 });
      await callers[1]!.complete(keys.limited);
      await callers[2]!.complete(keys.limited);
      await expect(callers[0]!.complete(keys.limited)).rejects.toMatchObject({ code: Code.ResourceExhausted });

      // 4. Tenants' keys: one added (accepted), one removed (refused).
      await expect(callers[0]!.complete(keys.added)).rejects.toMatchObject({ code: Code.Unauthenticated });
      await reconfigure({ added: true, limitedPresent: false });
      for (const caller of callers) await caller.complete(keys.added);
      for (const caller of callers) {
        await expect(caller.complete(keys.limited)).rejects.toMatchObject({ code: Code.Unauthenticated });
      }

      // 5. A provider removed while its streams are in flight: they complete; new calls find no alias.
      const slowBefore = upstreamSlow.requests.length;
      const slowStreams = callers.flatMap((caller) => [caller.stream(keys.load, "slow"), caller.stream(keys.load, "slow")]);
      await waitUntil(() => upstreamSlow.requests.length >= slowBefore + slowStreams.length, "slow streams started");
      await reconfigure({ slow: false });
      expect(await Promise.all(slowStreams)).toEqual(slowStreams.map(() => 8));
      await expect(callers[0]!.complete(keys.load, "slow")).rejects.toMatchObject({ code: Code.NotFound });

      // 6. An invalid file: rejected with a log line and a metric; the running configuration keeps serving.
      const rejectedBefore = rejections();
      await writeFile(config.file, "models: [this is not\n");
      await waitUntil(() => rejections() > rejectedBefore, "the reload was rejected");
      expect(await metric('sluice_config_reloads_total{result="rejected"}')).toBe(1);
      const rejectedLine = JSON.parse(sluice.lines.find((line) => line.includes("configuration reload rejected"))!) as {
        file: string;
        err: string;
        level: number;
      };
      expect(rejectedLine.file).toBe(config.file);
      expect(rejectedLine.err).toContain("not valid YAML");
      for (const caller of callers) await caller.complete(keys.added);
      // Valid YAML, invalid configuration (a deployment naming no provider): rejected too.
      const invalid = document(settings) as { models: Record<string, unknown> };
      invalid.models["broken"] = { deployments: [{ provider: "nowhere", model: "m" }] };
      await writeFile(config.file, JSON.stringify(invalid));
      await waitUntil(() => rejections() > rejectedBefore + 1, "the second invalid file was rejected");
      await expect(callers[0]!.complete(keys.load, "broken")).rejects.toMatchObject({ code: Code.NotFound });

      // 7. A setting that needs a restart: kept as it runs, with a warning naming it; the rest applies.
      const restart = document({ ...settings, added: false }) as { server: Record<string, unknown> };
      restart.server["drainTimeoutMs"] = 2_000;
      const beforeRestart = reloads();
      await writeFile(config.file, JSON.stringify(restart));
      await waitUntil(() => reloads() > beforeRestart, "reloaded with a restart-only change");
      // The warning is its own log line: it may arrive after the reload line.
      await waitUntil(() => sluice.lines.some((line) => line.includes("needs a restart")), "the restart warning");
      const warning = sluice.lines.find((line) => line.includes("needs a restart"));
      expect(JSON.parse(warning!)).toMatchObject({ key: "server.drainTimeoutMs", level: 40 });
      await expect(callers[2]!.complete(keys.added)).rejects.toMatchObject({ code: Code.Unauthenticated });

      // 8. SIGHUP reloads, even an unchanged file.
      const applied = (await metric('sluice_config_reloads_total{result="applied"}')) ?? 0;
      const before = reloads();
      sluice.child.kill("SIGHUP");
      await waitUntil(() => reloads() > before, "SIGHUP reloaded");
      expect(await metric('sluice_config_reloads_total{result="applied"}')).toBe(applied + 1);
      expect(await metric("sluice_config_last_reload_success_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
    } finally {
      await load.stop();
    }
    // The only error lines are the two rejections: nothing else went wrong (closing retired providers included).
    const errors = sluice.lines.filter((line) => /"level":(50|60)/.test(line));
    expect(errors.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual([
      "configuration reload rejected: the running configuration keeps serving",
      "configuration reload rejected: the running configuration keeps serving",
    ]);
    expect(load.failures).toEqual([]);
    expect(load.completed).toBeGreaterThan(200);
  }, 60_000);
});
