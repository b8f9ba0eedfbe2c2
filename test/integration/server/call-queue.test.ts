import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { ChatService } from "../../../gen/sluice/v1/chat_service_pb.js";
import { reasons } from "../../../src/errors/reasons.js";
import type { DemoProvider } from "../../../src/providers/demo/demo-provider.js";
import { parseExposition, sampleValue } from "../../helpers/metrics-exposition.js";
import { connectJsonTransport, createGrpcJsClient, toConnectError } from "../../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";
import { eventCount, waitUntil } from "../../helpers/wait-until.js";

/*
 * `server.queue`: at `server.maxConcurrentCalls` a new call waits in a short FIFO queue for
 * a call to end instead of being refused at once; past `size` waiting, or `maxWaitMs` in it,
 * it is refused (RESOURCE_EXHAUSTED, SERVER_OVERLOADED, RetryInfo); a waiter whose caller
 * leaves is dropped; at drain waiters are refused with UNAVAILABLE. Counted in
 * sluice_load_shed_total, shown by sluice_calls_in_progress / sluice_call_queue_length and
 * /healthz; gRPC health stays SERVING.
 */

const maxConcurrentCalls = 2;
/** Words a holding stream sends, `wordDelayMs` apart: it holds its slot ~1.4 s, then ends by itself. */
const holdWords = 10;
const wordDelayMs = 150;

function request(model: string, maxOutputTokens?: number) {
  return {
    model,
    messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hi" } }] }],
    ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
  };
}

/** The same calls over Connect JSON (HTTP/1.1) and over gRPC (grpc-js, HTTP/2). */
interface Caller {
  /** Streams to the end; resolves the number of deltas, rejects as a ConnectError. */
  stream(model: string, maxOutputTokens?: number, signal?: AbortSignal): Promise<number>;
  complete(model: string, signal?: AbortSignal): Promise<void>;
  close(): void;
}

function connectJsonCaller(url: string): Caller {
  const transport = connectJsonTransport(url);
  const chat = createClient(ChatService, transport.transport);
  return {
    async stream(model, maxOutputTokens, signal) {
      let deltas = 0;
      try {
        for await (const event of chat.streamComplete(request(model, maxOutputTokens), { signal })) {
          if (event.event.case === "delta") deltas++;
        }
      } catch (err) {
        throw ConnectError.from(err);
      }
      return deltas;
    },
    async complete(model, signal) {
      await chat.complete(request(model), { signal }).catch((err: unknown) => {
        throw ConnectError.from(err);
      });
    },
    close: () => transport.close(),
  };
}

function grpcJsCaller(url: string): Caller {
  const client = createGrpcJsClient(url);
  return {
    async stream(model, maxOutputTokens, signal) {
      const call = client.serverStream(ChatService.method.streamComplete, request(model, maxOutputTokens));
      signal?.addEventListener("abort", () => call.cancel());
      let deltas = 0;
      try {
        for await (const event of call) if (event.event.case === "delta") deltas++;
      } catch (err) {
        throw toConnectError(err);
      }
      return deltas;
    },
    async complete(model, signal) {
      const call = client.unary(ChatService.method.complete, request(model));
      // grpc-js unary calls have no signal; closing the client cancels them.
      signal?.addEventListener("abort", () => client.close());
      await call.catch((err: unknown) => {
        throw toConnectError(err);
      });
    },
    close: () => client.close(),
  };
}

const protocols = [
  ["connect-json", connectJsonCaller],
  ["grpc-js", grpcJsCaller],
] as const;

function expectOverloaded(error: unknown, setting: string): void {
  expect(error).toBeInstanceOf(ConnectError);
  const connectError = error as ConnectError;
  expect(connectError.code).toBe(Code.ResourceExhausted);
  expect(connectError.rawMessage).toContain(setting);
  expect(connectError.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.serverOverloaded);
  expect(Number(connectError.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds)).toBe(1);
}

async function metrics(sluice: StartedSluice): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await (await fetch(`${sluice.url}/metrics`)).text());
}

function shed(samples: ReturnType<typeof parseExposition>, reason: string): number | undefined {
  return sampleValue(samples, "sluice_load_shed_total", { reason });
}

/** Resolves the time a promise took to settle, and how. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

let sluice: StartedSluice | undefined;
const callers: Caller[] = [];
afterEach(async () => {
  for (const caller of callers.splice(0)) caller.close();
  await sluice?.close();
  sluice = undefined;
});

async function start(queue: { size: number; maxWaitMs: number }, slow: Record<string, unknown>): Promise<StartedSluice> {
  sluice = await startSluice(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0 }, slow: { type: "demo", ...slow } },
      models: {
        demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
        slow: { deployments: [{ provider: "slow", model: "thinking" }] },
      },
    },
    { server: { maxConcurrentCalls, queue, healthzDetails: true, drainTimeoutMs: 2_000 } },
  );
  return sluice;
}

describe.each(protocols)("server.queue over %s", (_name, makeCaller) => {
  it("calls 3–4 wait and are served when the first two end; call 5 is refused at once (queue full); all visible", async () => {
    const sluice = await start({ size: 2, maxWaitMs: 10_000 }, { wordDelayMs });
    const caller = makeCaller(sluice.url);
    callers.push(caller);
    const slow = sluice.sluice.providers.get("slow") as DemoProvider;
    const demo = sluice.sluice.providers.get("demo") as DemoProvider;

    // Calls 1–2 hold both slots, streaming slowly.
    const holdersStarted = eventCount(slow.events, "started", 2);
    const holders = [caller.stream("slow", holdWords), caller.stream("slow", holdWords)];
    await holdersStarted;
    // Calls 3–4 wait: nothing of them reaches a provider while they do.
    let finishedHolders = 0;
    slow.events.on("finished", () => finishedHolders++);
    let finishedWhenWaitersStarted = -1;
    demo.events.once("started", () => {
      finishedWhenWaitersStarted = finishedHolders;
    });
    const waiters = [timed(caller.stream("demo")), timed(caller.stream("demo"))];
    await waitUntil(() => sluice.server.queued === 2, "calls 3 and 4 queued");
    expect(sluice.server.inFlight).toBe(maxConcurrentCalls);

    // Call 5: the queue is full, refused at once.
    const fifth = await timed(caller.complete("demo"));
    expectOverloaded(fifth.error, "server.queue.size");
    expect(fifth.ms).toBeLessThan(1_000);
    expect(sluice.server.queued).toBe(2);

    // Visible: metrics, /healthz, and gRPC health still SERVING at the cap.
    const samples = await metrics(sluice);
    expect(sampleValue(samples, "sluice_calls_in_progress", {})).toBe(2);
    expect(sampleValue(samples, "sluice_call_queue_length", {})).toBe(2);
    expect(shed(samples, "queue_full")).toBe(1);
    expect(shed(samples, "queue_timeout")).toBe(0);
    expect(shed(samples, "no_queue")).toBe(0);
    const healthz = await fetch(`${sluice.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toMatchObject({
      status: "SERVING",
      load: { inProgress: 2, maxConcurrentCalls: 2, queued: 2, queueSize: 2 },
    });
    const grpc = createGrpcJsClient(sluice.url);
    try {
      expect((await grpc.unary(Health.method.check, { service: "" })).status).toBe(ServingStatus.SERVING);
    } finally {
      grpc.close();
    }

    // The holders end by themselves; then the waiters are served, whole.
    expect(await Promise.all(holders)).toEqual([holdWords, holdWords]);
    const served = await Promise.all(waiters);
    for (const waiter of served) {
      expect(waiter.error).toBeUndefined();
      expect(waiter.value).toBeGreaterThan(5);
      // They waited for the holders (~holdWords × wordDelayMs), far less than maxWaitMs.
      expect(waiter.ms).toBeGreaterThan(wordDelayMs * (holdWords - 3));
    }
    expect(finishedWhenWaitersStarted).toBeGreaterThanOrEqual(1);
    await waitUntil(() => sluice.server.inFlight === 0 && sluice.server.queued === 0, "all calls ended");
    const after = await metrics(sluice);
    expect(sampleValue(after, "sluice_call_queue_length", {})).toBe(0);
    expect(shed(after, "queue_full")).toBe(1);
  }, 20_000);

  it("a call waiting past maxWaitMs is refused; a waiter whose caller leaves is dropped, uncounted; draining refuses waiters", async () => {
    const maxWaitMs = 300;
    const sluice = await start({ size: 2, maxWaitMs }, { responseDelayMs: 60_000 });
    const caller = makeCaller(sluice.url);
    callers.push(caller);
    const slow = sluice.sluice.providers.get("slow") as DemoProvider;
    const holder = new AbortController();
    const holdersStarted = eventCount(slow.events, "started", 2);
    const holders = [caller.stream("slow", undefined, holder.signal), caller.stream("slow", undefined, holder.signal)].map((p) =>
      p.catch(() => 0),
    );
    await holdersStarted;

    // Past maxWaitMs in the queue: refused.
    const late = await timed(caller.complete("demo"));
    expectOverloaded(late.error, "server.queue.maxWaitMs");
    expect(late.ms).toBeGreaterThanOrEqual(maxWaitMs - 20);
    expect(late.ms).toBeLessThan(maxWaitMs + 1_500);
    expect(shed(await metrics(sluice), "queue_timeout")).toBe(1);

    // A waiter whose caller goes away leaves the queue at once, neither served nor counted.
    const leaver = makeCaller(sluice.url);
    callers.push(leaver);
    const leaving = new AbortController();
    const left = leaver.stream("demo", undefined, leaving.signal).catch(() => undefined);
    await waitUntil(() => sluice.server.queued === 1, "the leaver queued");
    const leftAt = performance.now();
    leaving.abort();
    await waitUntil(() => sluice.server.queued === 0, "the leaver gone", maxWaitMs / 2);
    expect(performance.now() - leftAt).toBeLessThan(maxWaitMs);
    await left;
    await new Promise((resolve) => setTimeout(resolve, maxWaitMs + 100));
    const samples = await metrics(sluice);
    expect(shed(samples, "queue_timeout")).toBe(1);
    expect(sampleValue(samples, "sluice_calls_in_progress", {})).toBe(2);

    // Draining: a waiter is refused at once with UNAVAILABLE, SERVER_SHUTTING_DOWN.
    const waiting = timed(caller.complete("demo"));
    await waitUntil(() => sluice.server.queued === 1, "a call queued before the drain");
    const shutdown = sluice.server.shutdown("test drain");
    const refused = await waiting;
    expect(refused.ms).toBeLessThan(maxWaitMs);
    expect((refused.error as ConnectError).code).toBe(Code.Unavailable);
    expect((refused.error as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.serverShuttingDown);
    // (The draining listener takes no new connection: the registry is read directly.)
    expect(shed(parseExposition(await sluice.sluice.metrics.exposition()), "draining")).toBe(1);
    holder.abort();
    await Promise.all(holders);
    await shutdown;
  }, 20_000);
});

describe("server.queue.size: 0", () => {
  it("refuses at the cap at once, counted as no_queue", async () => {
    const sluice = await start({ size: 0, maxWaitMs: 250 }, { responseDelayMs: 60_000 });
    const caller = connectJsonCaller(sluice.url);
    callers.push(caller);
    const slow = sluice.sluice.providers.get("slow") as DemoProvider;
    const holder = new AbortController();
    const holdersStarted = eventCount(slow.events, "started", 2);
    const holders = [caller.stream("slow", undefined, holder.signal), caller.stream("slow", undefined, holder.signal)].map((p) =>
      p.catch(() => 0),
    );
    await holdersStarted;
    const refused = await timed(caller.complete("demo"));
    expectOverloaded(refused.error, "server.maxConcurrentCalls");
    expect(sluice.server.queued).toBe(0);
    const samples = await metrics(sluice);
    expect(shed(samples, "no_queue")).toBe(1);
    expect(sampleValue(samples, "sluice_call_queue_length", {})).toBe(0);
    holder.abort();
    await Promise.all(holders);
  });
});
