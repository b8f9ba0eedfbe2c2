import { afterEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { startFakeUpstream, type FakeUpstream, type Responder } from "../helpers/fake-upstream.js";
import { completion, error400, error500, streamOf } from "../helpers/openai-wire.js";
import { jsonResponse } from "../helpers/fake-upstream.js";
import { callerProtocols, createChatCaller, type ChatCaller } from "../helpers/chat-callers.js";

/**
 * Retries, fail-over, breakers, fallbacks and degraded answers, proven against two fake
 * OpenAI-compatible deployments ("a" and "b") speaking the real wire format, over Connect
 * JSON and gRPC. Each test starts its own gateway, so breaker state never leaks between tests.
 */

const hello = { model: "chat", messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "Hi" } }] }] };

interface Rig {
  a: FakeUpstream;
  b: FakeUpstream;
  sluice: StartedSluice;
  caller: ChatCaller;
  /** When each fake received each request (ms, monotonic). */
  arrivals: { a: number[]; b: number[] };
}

let rig: Rig | undefined;
afterEach(async () => {
  if (rig === undefined) return;
  rig.caller.close();
  await rig.sluice.close();
  await Promise.all([rig.a.close(), rig.b.close()]);
  rig = undefined;
});

async function start(
  protocol: (typeof callerProtocols)[number],
  respondA: Responder,
  respondB: Responder,
  models: (providers: { a: string; b: string }) => Record<string, unknown>,
  resilience: Record<string, unknown> = {},
): Promise<Rig> {
  const arrivals = { a: [] as number[], b: [] as number[] };
  const a = await startFakeUpstream((req, i) => {
    arrivals.a.push(performance.now());
    return respondA(req, i);
  });
  const b = await startFakeUpstream((req, i) => {
    arrivals.b.push(performance.now());
    return respondB(req, i);
  });
  const sluice = await startSluice({
    providers: {
      a: { type: "openai", baseUrl: `${a.origin}/v1`, apiKey: "key-a" },
      b: { type: "openai", baseUrl: `${b.origin}/v1`, apiKey: "key-b" },
    },
    models: models({ a: "a", b: "b" }),
    resilience,
  });
  rig = { a, b, sluice, caller: createChatCaller(protocol, sluice.url), arrivals };
  return rig;
}

const twoDeployments = (retry: Record<string, unknown> = {}) => () => ({
  chat: {
    deployments: [
      { provider: "a", model: "model-a" },
      { provider: "b", model: "model-b" },
    ],
    retry: { initialBackoffMs: 10, maxBackoffMs: 20, ...retry },
  },
});

describe.each(callerProtocols)("resilience over %s", (protocol) => {
  it("waits exactly as long as Retry-After says, then retries the same deployment", async () => {
    const { caller, a, b, arrivals } = await start(
      protocol,
      (_req, i) => (i === 0 ? { ...error500, status: 429, headers: { "content-type": "application/json", "retry-after-ms": "300" } } : completion("after wait")),
      () => completion("from b"),
      twoDeployments({ maxAttempts: 2 }),
    );
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("after wait");
    expect(response.route).toMatchObject({ provider: "a", upstreamModel: "model-a", attempts: 2, fallbackModel: "", degraded: false });
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(0);
    expect(arrivals.a[1]! - arrivals.a[0]!).toBeGreaterThanOrEqual(300 - 5);
  });

  it("never retries a bad request, nor fails it over", async () => {
    const { caller, a, b } = await start(protocol, () => error400, () => completion("b"), twoDeployments({ maxAttempts: 3 }));
    const error = await caller.completeError(hello);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(0);
  });

  it("fails over to the next deployment after retrying a server error, and says so", async () => {
    const { caller, a, b } = await start(protocol, () => error500, () => completion("from b"), twoDeployments({ maxAttempts: 2 }));
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("from b");
    expect(response.route).toMatchObject({ provider: "b", upstreamModel: "model-b", attempts: 3 });
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(1);
  });

  it("opens a deployment's breaker after its failures, skips it, then probes once and closes", async () => {
    let aHealthy = false;
    const { caller, a, b } = await start(
      protocol,
      () => (aHealthy ? completion("a is back") : error500),
      () => completion("from b"),
      twoDeployments({ maxAttempts: 1 }),
      { breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 400, rollingWindowMs: 10_000 } },
    );
    await caller.complete(hello);
    await caller.complete(hello);
    expect(a.requests).toHaveLength(2);
    // Open: a is skipped without being called.
    const skipped = await caller.complete(hello);
    expect(skipped.route).toMatchObject({ provider: "b", attempts: 1 });
    expect(a.requests).toHaveLength(2);
    // After resetTimeoutMs the breaker half-opens (its own timer); one probe goes to a,
    // succeeds, and closes it. Bounded wait on the breaker's state, not on a guess.
    const breakers = rig!.sluice.sluice.breakers;
    expect(breakers.states()["a/model-a"]).toBe("open");
    // Operators see it too.
    const healthz = await fetch(`${rig!.sluice.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ status: "SERVING", breakers: { "a/model-a": "open", "b/model-b": "closed" }, inFlight: {} });
    aHealthy = true;
    for (let i = 0; i < 100 && breakers.states()["a/model-a"] !== "half-open"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(breakers.states()["a/model-a"]).toBe("half-open");
    const probed = await caller.complete(hello);
    expect(probed.route?.provider).toBe("a");
    expect(a.requests).toHaveLength(3);
    expect(breakers.states()["a/model-a"]).toBe("closed");
    const after = await caller.complete(hello);
    expect(after.route?.provider).toBe("a");
    expect(b.requests.length).toBeGreaterThanOrEqual(1);
  });

  it("answers UNAVAILABLE naming the model when every deployment's breaker is open", async () => {
    const { caller } = await start(
      protocol,
      () => error500,
      () => error500,
      twoDeployments({ maxAttempts: 1 }),
      { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000, rollingWindowMs: 10_000 } },
    );
    expect((await caller.completeError(hello)).code).toBe(Code.Unavailable);
    const error = await caller.completeError(hello);
    expect(error.code).toBe(Code.Unavailable);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ALL_DEPLOYMENTS_UNAVAILABLE");
    expect(error.rawMessage).toContain('"chat"');
  });

  it("fails a stream over before its first token: the caller sees one start, from the deployment that answered", async () => {
    const { caller, a, b } = await start(protocol, () => error500, () => streamOf(["Hel", "lo"]), twoDeployments({ maxAttempts: 1 }));
    const { events, error } = await caller.stream(hello);
    expect(error).toBeUndefined();
    const kinds = events.map((e) => e.event.case);
    expect(kinds).toEqual(["start", "delta", "delta", "done"]);
    expect(events[0]?.event.value).toMatchObject({ provider: "b" });
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", attempts: 2 });
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);
  });

  it("never fails over after the first token: a cut mid-stream ends with an error status, not OK", async () => {
    const { caller, b } = await start(
      protocol,
      () => streamOf(["one", "two"], {}, false),
      () => streamOf(["never"]),
      twoDeployments({ maxAttempts: 1 }),
    );
    const { events, error } = await caller.stream(hello);
    expect(events.map((e) => e.event.case)).toEqual(["start", "delta", "delta"]);
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect(b.requests).toHaveLength(0);
  });

  it("falls back to another model alias when every deployment of the requested one failed", async () => {
    const { caller } = await start(
      protocol,
      () => error500,
      () => completion("backup answer"),
      () => ({
        chat: { deployments: [{ provider: "a", model: "model-a" }], fallbacks: ["backup"], retry: { maxAttempts: 1 } },
        backup: { deployments: [{ provider: "b", model: "model-b" }] },
      }),
    );
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("backup answer");
    expect(response.route).toMatchObject({ provider: "b", fallbackModel: "backup", attempts: 2 });
  });

  it("falls back to a larger-context alias on a context-length error only when configured to", async () => {
    const contextLength = jsonResponse(400, {
      error: { message: "This model's maximum context length is 4097 tokens.", type: "invalid_request_error", param: "messages", code: "context_length_exceeded" },
    });
    const models = (fallbackOnContextLength: boolean) => () => ({
      chat: { deployments: [{ provider: "a", model: "small" }], fallbacks: ["large"], fallbackOnContextLength },
      large: { deployments: [{ provider: "b", model: "large" }] },
    });
    const on = await start(protocol, () => contextLength, () => completion("long answer"), models(true));
    const response = await on.caller.complete(hello);
    expect(response.route).toMatchObject({ provider: "b", fallbackModel: "large" });
    expect(on.a.requests).toHaveLength(1);
  });

  it("does not fall back on a context-length error by default: the caller gets INVALID_ARGUMENT", async () => {
    const contextLength = jsonResponse(400, {
      error: { message: "too long", type: "invalid_request_error", param: "messages", code: "context_length_exceeded" },
    });
    const { caller, b } = await start(protocol, () => contextLength, () => completion("x"), () => ({
      chat: { deployments: [{ provider: "a", model: "small" }], fallbacks: ["large"] },
      large: { deployments: [{ provider: "b", model: "large" }] },
    }));
    const error = await caller.completeError(hello);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CONTEXT_LENGTH_EXCEEDED");
    expect(b.requests).toHaveLength(0);
  });

  it("passes a client cancel to the upstream request within 100 ms", async () => {
    const { caller, a } = await start(
      protocol,
      () => streamOf(["first"], { stallAfterChunks: true }, false),
      () => completion("b"),
      () => ({ chat: { deployments: [{ provider: "a", model: "model-a" }] } }),
    );
    const aborted = a.nextAbort();
    let cancelledAt = 0;
    const { error } = await caller.stream(hello, {
      cancelWhen: (event) => {
        if (event.event.case !== "delta") return false;
        cancelledAt = performance.now();
        return true;
      },
    });
    expect(error?.code).toBe(Code.Canceled);
    await aborted;
    expect(performance.now() - cancelledAt).toBeLessThan(100);
  });

  it("returns the configured degraded answer, flagged as degraded, only when every candidate failed", async () => {
    const { caller } = await start(
      protocol,
      () => error500,
      () => error500,
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          retry: { maxAttempts: 1 },
          degraded: { message: "The assistant is busy; please try again shortly." },
        },
      }),
    );
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("The assistant is busy; please try again shortly.");
    expect(response.route).toMatchObject({ degraded: true, attempts: 2, provider: "sluice" });
    const { events, error } = await caller.stream(hello);
    expect(error).toBeUndefined();
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route?.degraded).toBe(true);
  });

  it("stops waiting for Retry-After when the caller's deadline passes, without another upstream request", async () => {
    const { caller, a, b } = await start(
      protocol,
      () => ({ ...error500, status: 429, headers: { "content-type": "application/json", "retry-after-ms": "5000" } }),
      () => completion("b"),
      () => ({ chat: { deployments: [{ provider: "a", model: "model-a" }], retry: { maxAttempts: 3 } } }),
    );
    const started = performance.now();
    const error = await caller.completeError(hello, { timeoutMs: 300 });
    expect([Code.DeadlineExceeded, Code.Canceled]).toContain(error.code);
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(0);
  });

  it("hedges a slow stream: a second deployment starts after the delay, the first token wins, the loser is aborted upstream", async () => {
    const { caller, a, b } = await start(
      protocol,
      () => ({ ...streamOf(["slow"]), delayBeforeHeadersMs: 5_000 }),
      () => streamOf(["fast", " answer"]),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          hedge: { delayMs: 100 },
        },
      }),
    );
    const loserAborted = a.nextAbort();
    const { events, error } = await caller.stream(hello);
    expect(error).toBeUndefined();
    const text = events.map((e) => (e.event.case === "delta" ? e.event.value.text : "")).join("");
    expect(text).toBe("fast answer");
    expect(events.filter((e) => e.event.case === "start")).toHaveLength(1);
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", hedged: true, attempts: 2 });
    await loserAborted;
    expect(b.requests).toHaveLength(1);
  });

  it("hedges a slow unary call the same way: the faster deployment answers, the slow request is aborted", async () => {
    const { caller, a } = await start(
      protocol,
      () => ({ ...completion("slow"), delayBeforeHeadersMs: 5_000 }),
      () => completion("fast"),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          hedge: { delayMs: 100 },
        },
      }),
    );
    const loserAborted = a.nextAbort();
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("fast");
    expect(response.route).toMatchObject({ provider: "b", hedged: true, attempts: 2 });
    await loserAborted;
    // A plain HTTP caller learns the same from the response headers.
    const plain = await fetch(`${rig!.sluice.url}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "ROLE_USER", content: [{ text: "Hi" }] }] }),
    });
    expect(plain.status).toBe(200);
    expect(Object.fromEntries([...plain.headers].filter(([name]) => name.startsWith("sluice-")))).toEqual({
      "sluice-provider": "b",
      "sluice-upstream-model": "model-b",
      "sluice-attempts": "2",
      "sluice-hedged": "true",
    });
  });

  it("does not hedge a stream whose first token comes within the delay", async () => {
    const { caller, b } = await start(
      protocol,
      () => streamOf(["quick"]),
      () => streamOf(["never"]),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          hedge: { delayMs: 2_000 },
        },
      }),
    );
    const { events, error } = await caller.stream(hello);
    expect(error).toBeUndefined();
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "a", hedged: false, attempts: 1 });
    expect(b.requests).toHaveLength(0);
  });

  it("hedges at the first deployment's observed p95 once it has enough samples, not at the fixed delay", async () => {
    let slow = false;
    const { caller, a, b } = await start(
      protocol,
      () => (slow ? { ...completion("slow"), delayBeforeHeadersMs: 10_000 } : completion("a")),
      () => completion("hedge"),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          // 10 s until measured; then a's p95 (a few ms here) decides.
          hedge: { delayMs: 10_000, percentile: 95 },
        },
      }),
    );
    for (let i = 0; i < 20; i++) expect((await caller.complete(hello)).route).toMatchObject({ provider: "a", hedged: false });
    expect(b.requests).toHaveLength(0);
    slow = true;
    const loserAborted = a.nextAbort();
    // A fixed 10 s delay would miss this deadline; the observed p95 hedges at once.
    const response = await caller.complete(hello, { timeoutMs: 5_000 });
    expect(response.route).toMatchObject({ provider: "b", hedged: true, attempts: 2 });
    expect(response.message?.content[0]?.part.value).toBe("hedge");
    await loserAborted;
  });

  it("hedges streams at the observed p95 of time to first token", async () => {
    let slow = false;
    const { caller, a } = await start(
      protocol,
      () => (slow ? { ...streamOf(["slow"]), delayBeforeHeadersMs: 10_000 } : streamOf(["a"])),
      () => streamOf(["hedge"]),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          hedge: { delayMs: 10_000, percentile: 95 },
        },
      }),
    );
    for (let i = 0; i < 20; i++) expect((await caller.stream(hello)).error).toBeUndefined();
    slow = true;
    const loserAborted = a.nextAbort();
    const { events, error } = await caller.stream(hello, { timeoutMs: 5_000 });
    expect(error).toBeUndefined();
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", hedged: true, attempts: 2 });
    await loserAborted;
  });

  it("skips a deployment at its maxInFlight (fail-over, or UNAVAILABLE when nothing else can serve) and frees the slot after", async () => {
    const { caller, a, b } = await start(
      protocol,
      (_req, i) => (i === 0 ? { ...completion("held"), delayBeforeHeadersMs: 400 } : completion("a")),
      () => completion("b"),
      () => ({
        chat: {
          deployments: [{ provider: "a", model: "model-a", maxInFlight: 1 }, { provider: "b", model: "model-b" }],
        },
        solo: { deployments: [{ provider: "a", model: "model-a", maxInFlight: 1 }] },
      }),
    );
    const held = caller.complete(hello);
    for (let i = 0; i < 100 && a.requests.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(a.requests).toHaveLength(1);
    const healthz = (await (await fetch(`${rig!.sluice.url}/healthz`)).json()) as { inFlight: Record<string, number> };
    expect(healthz.inFlight).toEqual({ "a/model-a": 1 });
    // a is full: the call goes straight to b, without touching a.
    const overflow = await caller.complete(hello);
    expect(overflow.route).toMatchObject({ provider: "b", attempts: 1 });
    // The same deployment under another alias shares the count; with nothing else to try, UNAVAILABLE.
    const busy = await caller.completeError({ ...hello, model: "solo" });
    expect(busy.code).toBe(Code.Unavailable);
    expect(busy.message).toContain('every deployment of model "solo" is at its in-flight limit');
    expect(busy.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ALL_DEPLOYMENTS_BUSY");
    expect((await held).route?.provider).toBe("a");
    // The slot is back.
    expect((await caller.complete({ ...hello, model: "solo" })).route?.provider).toBe("a");
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(1);
  });

  it("routes by conditional rule (a header) and keeps a sticky user on one deployment", async () => {
    const { a, b } = await start(
      protocol,
      () => completion("a"),
      () => completion("b"),
      () => ({
        chat: {
          strategy: "sticky",
          stickyKey: "end_user",
          deployments: [{ provider: "a", model: "model-a" }, { provider: "b", model: "model-b" }],
          routes: [{ match: { headers: { "beta-user": "true" } }, deployments: ["b/model-b"] }],
        },
      }),
    );
    // The rule: beta users go to b, whoever they are. Headers are sent as gRPC metadata or HTTP headers.
    const caller = rig!.caller;
    for (let i = 0; i < 5; i++) {
      const response = await caller.complete({ ...hello, metadata: { end_user: `user-${i}` } }, { headers: { "beta-user": "true" } });
      expect(response.route?.provider).toBe("b");
    }
    // Sticky: each user lands on the same deployment every time.
    for (let user = 0; user < 10; user++) {
      const first = await caller.complete({ ...hello, metadata: { end_user: `u${user}` } });
      for (let again = 0; again < 3; again++) {
        const next = await caller.complete({ ...hello, metadata: { end_user: `u${user}` } });
        expect(next.route?.provider).toBe(first.route?.provider);
      }
    }
    expect(a.requests.length + b.requests.length).toBe(45);
  });
});
