import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { failures } from "../errors/failure-table.js";
import {
  callerContext,
  createRunnerRig,
  drain,
  fail,
  reasonOf,
  stream,
  track,
  upstreamError,
  type RunnerRig,
} from "../../test/helpers/fake-provider.js";

/**
 * Streams through the call runner: retries and fail-over only before the first token
 * reaches the caller; after it, an upstream failure ends the stream with its status.
 */

let rig: RunnerRig;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  rig?.close();
  vi.useRealTimers();
});

const kinds = (events: readonly StreamCompleteResponse[]) => events.map((e) => e.event.case);
const texts = (events: readonly StreamCompleteResponse[]) =>
  events.map((e) => (e.event.case === "delta" ? e.event.value.text : "")).join("");
const routeOf = (events: readonly StreamCompleteResponse[]) => {
  const last = events.at(-1)?.event;
  return last?.case === "done" ? last.value.route : undefined;
};
const serverError = () => upstreamError(failures.serverError, { status: 500 });

function start(extra: Record<string, unknown> = {}, breaker: Record<string, number> = {}): RunnerRig {
  rig = createRunnerRig(
    {
      chat: {
        deployments: [
          { provider: "a", model: "model-a", maxInFlight: 5 },
          { provider: "b", model: "model-b" },
        ],
        retry: { maxAttempts: 3, initialBackoffMs: 100 },
        ...extra,
      },
    },
    { resilience: { breaker } },
  );
  return rig;
}

describe("call runner: streams", () => {
  it("relays the stream; done carries the route and the sluice-* trailers are set", async () => {
    const { a } = start();
    a.script(stream(["Hel", "lo"]));
    const context = callerContext();
    const { events, error } = await drain(rig.stream("chat", context));
    expect(error).toBeUndefined();
    expect(kinds(events)).toEqual(["start", "delta", "delta", "done"]);
    expect(texts(events)).toBe("Hello");
    expect(routeOf(events)).toMatchObject({
      provider: "a",
      upstreamModel: "model-a",
      attempts: 1,
      fallbackModel: "",
      degraded: false,
      hedged: false,
    });
    expect(Object.fromEntries(context.responseTrailer)).toEqual({
      "sluice-provider": "a",
      "sluice-upstream-model": "model-a",
      "sluice-attempts": "1",
    });
    expect([...context.responseHeader]).toEqual([]);
    expect(rig.limiter.counts()).toEqual({ "a/model-a": 0 });
  });

  it("retries a failure before the start on the same deployment, after the backoff", async () => {
    const { a, b } = start();
    a.script(fail(serverError()), stream(["second"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(50);
    expect(outcome.value?.error).toBeUndefined();
    expect(kinds(outcome.value!.events)).toEqual(["start", "delta", "done"]);
    expect(routeOf(outcome.value!.events)).toMatchObject({ provider: "a", attempts: 2 });
    expect(a.calls.map((c) => c.at - a.calls[0]!.at)).toEqual([0, 50]);
    expect(b.calls).toHaveLength(0);
  });

  it("retries a failure between start and the first token: the caller sees one start, never the failed one's", async () => {
    const { a } = start({ retry: { maxAttempts: 1 } });
    a.script(stream([], { error: serverError() }));
    rig.b.script(stream(["from b"]));
    const { events, error } = await drain(rig.stream());
    expect(error).toBeUndefined();
    expect(kinds(events)).toEqual(["start", "delta", "done"]);
    expect(events[0]!.event.value).toMatchObject({ provider: "b", model: "model-b" });
    expect(routeOf(events)).toMatchObject({ provider: "b", attempts: 2 });
    expect(a.calls).toHaveLength(1);
  });

  it("a failure after the first token ends the stream with its status: no retry, no fail-over, never OK", async () => {
    // Breaker threshold: one failure by the deployment's fault.
    const { a, b } = start({}, { volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.script(stream(["one", "two"], "cut"));
    b.otherwise(stream(["never"]));
    const context = callerContext();
    const { events, error } = await drain(rig.stream("chat", context));
    expect(kinds(events)).toEqual(["start", "delta", "delta"]);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect([...context.responseTrailer]).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(rig.breakers.states()["a/model-a"]).toBe("open");
    expect(rig.limiter.counts()).toEqual({ "a/model-a": 0 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect([a.calls.length, b.calls.length]).toEqual([1, 0]);
  });

  it("a non-upstream error after the first token reaches the caller as a ConnectError, and is no evidence against the deployment", async () => {
    const { a } = start({}, { volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.script(stream(["one"], { error: new Error("adapter bug") }));
    const { events, error } = await drain(rig.stream());
    expect(kinds(events)).toEqual(["start", "delta"]);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).rawMessage).toBe("adapter bug");
    expect(rig.breakers.states()["a/model-a"]).toBe("closed");
  });

  it("fails a stream over before its first token and falls back to another alias, naming it", async () => {
    rig = createRunnerRig({
      chat: { deployments: [{ provider: "a", model: "model-a" }], fallbacks: ["backup"], retry: { maxAttempts: 1 } },
      backup: { deployments: [{ provider: "b", model: "model-b" }] },
    });
    rig.a.script(fail(serverError()));
    rig.b.script(stream(["backup"]));
    const context = callerContext();
    const { events, error } = await drain(rig.stream("chat", context));
    expect(error).toBeUndefined();
    expect(routeOf(events)).toMatchObject({ provider: "b", fallbackModel: "backup", attempts: 2 });
    expect(context.responseTrailer.get("sluice-fallback-model")).toBe("backup");
  });

  it("a consumer that stops early closes the upstream stream and frees the deployment, charging nothing", async () => {
    const { a } = start({}, { volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.script(stream(["one", "two", "three"]));
    const events = rig.stream();
    const seen: string[] = [];
    for await (const event of events) {
      seen.push(event.event.case!);
      if (event.event.case === "delta") break;
    }
    expect(seen).toEqual(["start", "delta"]);
    expect(a.calls[0]!.returned).toBe(true);
    expect(rig.limiter.counts()).toEqual({ "a/model-a": 0 });
    expect(rig.breakers.states()["a/model-a"]).toBe("closed");
  });

  it("a half-open probe stream its consumer abandons sends the breaker back to open: a new probe goes out later", async () => {
    const { a, b, breakers } = start(
      { retry: { maxAttempts: 1 } },
      { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 1_000 },
    );
    a.script(fail(serverError()), stream(["probe", "more"]), stream(["second probe"]));
    b.otherwise(stream(["from b"]));
    await drain(rig.stream());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(breakers.states()["a/model-a"]).toBe("half-open");
    for await (const event of rig.stream()) if (event.event.case === "delta") break;
    expect(a.calls).toHaveLength(2);
    expect(breakers.states()["a/model-a"]).toBe("open");
    await vi.advanceTimersByTimeAsync(1_000);
    const { events } = await drain(rig.stream());
    expect(routeOf(events)).toMatchObject({ provider: "a", attempts: 1 });
    expect(breakers.states()["a/model-a"]).toBe("closed");
  });

  it("the caller's cancel mid-stream aborts the upstream signal at once; CANCELLED, and the breaker is not charged", async () => {
    const { a, b } = start({}, { volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.script(stream(["one"], "hang"));
    b.otherwise(stream(["never"]));
    const context = callerContext();
    const iterator = rig.stream("chat", context);
    expect((await iterator.next()).value?.event.case).toBe("start");
    expect((await iterator.next()).value?.event.case).toBe("delta");
    const pending = track(iterator.next());
    await vi.advanceTimersByTimeAsync(70);
    context.cancel();
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 70);
    await vi.advanceTimersByTimeAsync(0);
    expect((pending.error as ConnectError).code).toBe(Code.Canceled);
    expect(b.calls).toHaveLength(0);
    expect(rig.breakers.states()["a/model-a"]).toBe("closed");
    expect(rig.limiter.counts()).toEqual({ "a/model-a": 0 });
  });

  it("streams the degraded answer, flagged in done and the trailers, when every candidate failed", async () => {
    const { a, b } = start({ retry: { maxAttempts: 1 }, degraded: { message: "busy, retry soon" } });
    a.script(fail(serverError()));
    b.script(stream([], { error: serverError() }));
    const context = callerContext();
    const { events, error } = await drain(rig.stream("chat", context));
    expect(error).toBeUndefined();
    expect(kinds(events)).toEqual(["start", "delta", "done"]);
    expect(texts(events)).toBe("busy, retry soon");
    expect(events[0]!.event.value).toMatchObject({ provider: "sluice", model: "degraded" });
    expect(routeOf(events)).toMatchObject({ provider: "sluice", upstreamModel: "degraded", degraded: true, attempts: 2 });
    expect(context.responseTrailer.get("sluice-degraded")).toBe("true");
  });

  it("without a degraded answer, a stream whose every candidate failed ends with the last error", async () => {
    const { a, b } = start({ retry: { maxAttempts: 1 } });
    a.script(fail(serverError()));
    b.script(fail(upstreamError(failures.overloaded, { status: 529 })));
    const { events, error } = await drain(rig.stream());
    expect(events).toEqual([]);
    expect(reasonOf(error)).toBe("UPSTREAM_OVERLOADED");
  });
});
