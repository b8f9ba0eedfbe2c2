import { afterEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { startFakeUpstream, type FakeUpstream, type Responder } from "../helpers/fake-upstream.js";
import { completion, error500, streamOf } from "../helpers/openai-wire.js";
import { callerProtocols, createChatCaller, type ChatCaller } from "../helpers/chat-callers.js";

/**
 * The call runner end to end: a few resilience paths against two fake OpenAI-compatible
 * deployments ("a" and "b") speaking the real wire format, over Connect JSON and gRPC —
 * Retry-After read off a real 429, fail-over, an open breaker (and /healthz), a mid-stream
 * cut, a caller's cancel and a hedge reaching the upstream socket. Every path of the runner
 * is proven in fake time by the unit tests beside it (src/resilience/call-runner*.test.ts,
 * attempt.test.ts, hedge-race.test.ts). Each test starts its own gateway, so breaker state
 * never leaks between tests.
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
    // Breaker states at /healthz are for operators: off unless asked for.
    server: { healthzDetails: true },
  });
  rig = { a, b, sluice, caller: createChatCaller(protocol, sluice.url), arrivals };
  return rig;
}

const twoDeployments =
  (retry: Record<string, unknown> = {}) =>
  () => ({
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
      (_req, i) =>
        i === 0
          ? { ...error500, status: 429, headers: { "content-type": "application/json", "retry-after-ms": "150" } }
          : completion("after wait"),
      () => completion("from b"),
      twoDeployments({ maxAttempts: 2 }),
    );
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("after wait");
    expect(response.route).toMatchObject({
      provider: "a",
      upstreamModel: "model-a",
      attempts: 2,
      fallbackModel: "",
      degraded: false,
    });
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(0);
    // The backoff alone would be at most 10 ms.
    expect(arrivals.a[1]! - arrivals.a[0]!).toBeGreaterThanOrEqual(150 - 5);
  });

  it("fails over to the next deployment after retrying a server error, and says so", async () => {
    const { caller, a, b } = await start(
      protocol,
      () => error500,
      () => completion("from b"),
      twoDeployments({ maxAttempts: 2 }),
    );
    const response = await caller.complete(hello);
    expect(response.message?.content[0]?.part.value).toBe("from b");
    expect(response.route).toMatchObject({ provider: "b", upstreamModel: "model-b", attempts: 3 });
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(1);
  });

  it("opens a deployment's breaker after its failures and skips it; UNAVAILABLE naming the model when nothing else can serve", async () => {
    const { caller, a, b } = await start(
      protocol,
      () => error500,
      () => completion("from b"),
      () => ({
        ...twoDeployments({ maxAttempts: 1 })(),
        solo: { deployments: [{ provider: "a", model: "model-a" }], retry: { maxAttempts: 1 } },
      }),
      { breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, rollingWindowMs: 10_000 } },
    );
    await caller.complete(hello);
    await caller.complete(hello);
    expect(a.requests).toHaveLength(2);
    // Open: a is skipped without being called.
    const skipped = await caller.complete(hello);
    expect(skipped.route).toMatchObject({ provider: "b", attempts: 1 });
    const error = await caller.completeError({ ...hello, model: "solo" });
    expect(error.code).toBe(Code.Unavailable);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ALL_DEPLOYMENTS_UNAVAILABLE");
    expect(error.rawMessage).toContain('"solo"');
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(3);
    // Operators see it too.
    const healthz = await fetch(`${rig!.sluice.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toMatchObject({
      status: "SERVING",
      breakers: { "a/model-a": "open", "b/model-b": "closed" },
      inFlight: {},
      state: { status: "ok", backend: "memory" },
    });
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

  it("hedges a slow stream: a second deployment starts after the delay, the first token wins, the loser is aborted upstream", async () => {
    const { caller, a, b } = await start(
      protocol,
      () => ({ ...streamOf(["slow"]), delayBeforeHeadersMs: 5_000 }),
      () => streamOf(["fast", " answer"]),
      () => ({
        chat: {
          deployments: [
            { provider: "a", model: "model-a" },
            { provider: "b", model: "model-b" },
          ],
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

  it("routes by conditional rule (a header) and keeps a sticky user on one deployment", async () => {
    const { a, b } = await start(
      protocol,
      () => completion("a"),
      () => completion("b"),
      () => ({
        chat: {
          strategy: "sticky",
          stickyKey: "end_user",
          deployments: [
            { provider: "a", model: "model-a" },
            { provider: "b", model: "model-b" },
          ],
          routes: [{ match: { headers: { "beta-user": "true" } }, deployments: ["b/model-b"] }],
        },
      }),
    );
    // The rule: beta users go to b, whoever they are. Headers are sent as gRPC metadata or HTTP headers.
    const caller = rig!.caller;
    for (let i = 0; i < 5; i++) {
      const response = await caller.complete(
        { ...hello, metadata: { end_user: `user-${i}` } },
        { headers: { "beta-user": "true" } },
      );
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
