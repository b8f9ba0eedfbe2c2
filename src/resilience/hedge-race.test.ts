import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { failures } from "../errors/failure-table.js";
import {
  answer,
  callerContext,
  createRunnerRig,
  drain,
  fail,
  hang,
  reasonOf,
  stream,
  track,
  upstreamError,
  type RunnerRig,
} from "../../test/helpers/fake-provider.js";

/** Hedging through the call runner (raceHedged), over fake providers and fake time. */

let rig: RunnerRig;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  rig?.close();
  vi.useRealTimers();
});

function start(
  hedge: Record<string, number>,
  extra: Record<string, unknown> = {},
  breaker: Record<string, number> = {},
): RunnerRig {
  rig = createRunnerRig(
    {
      chat: {
        deployments: [
          { provider: "a", model: "model-a" },
          { provider: "b", model: "model-b" },
        ],
        retry: { maxAttempts: 1 },
        hedge,
        ...extra,
      },
      bonly: { deployments: [{ provider: "b", model: "model-b" }], retry: { maxAttempts: 1 } },
    },
    { resilience: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, ...breaker } } },
  );
  return rig;
}

describe("hedging (unary)", () => {
  it("starts the second deployment exactly at delayMs; the first answer wins and the loser is aborted upstream at once", async () => {
    const { a, b, breakers, limiter } = start({ delayMs: 100 });
    a.script(answer("slow", 5_000));
    b.script(answer("fast", 10));
    const context = callerContext();
    const call = track(rig.complete("chat", context));
    await vi.advanceTimersByTimeAsync(99);
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(b.calls[0]!.at - a.calls[0]!.at).toBe(100);
    expect(a.calls[0]!.abortedAt).toBeUndefined();
    await vi.advanceTimersByTimeAsync(10);
    expect(call.value?.message?.content[0]?.part.value).toBe("fast");
    expect(call.value?.route).toMatchObject({
      provider: "b",
      upstreamModel: "model-b",
      attempts: 2,
      hedged: true,
      fallbackModel: "",
    });
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 110);
    expect(b.calls[0]!.abortedAt).toBeUndefined();
    expect(Object.fromEntries(context.responseHeader)).toEqual({
      "sluice-provider": "b",
      "sluice-upstream-model": "model-b",
      "sluice-attempts": "2",
      "sluice-hedged": "true",
    });
    // The lost race is no evidence against a (its threshold here is one failure).
    await vi.advanceTimersByTimeAsync(0);
    expect(breakers.states()).toEqual({ "a/model-a": "closed", "b/model-b": "closed" });
    expect(limiter.counts()).toEqual({});
  });

  it("the first deployment still wins when it answers after the hedge started but before the hedge does", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(answer("a", 150));
    b.script(answer("b", 100));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(150);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 2, hedged: false });
    expect(b.calls[0]!.abortedAt).toBe(b.calls[0]!.at + 50);
  });

  it("does not hedge when the answer comes within the delay", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(answer("quick", 99));
    b.otherwise(answer("never"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 1, hedged: false });
    expect(b.calls).toHaveLength(0);
    expect(a.calls[0]!.abortedAt).toBeUndefined();
  });

  it("when both fail, the caller gets the first deployment's error, and the partner is not tried again", async () => {
    const { a, b } = start({ delayMs: 100 }, {}, { volumeThreshold: 10 });
    a.script(fail(upstreamError(failures.serverError), 300));
    b.script(fail(upstreamError(failures.overloaded), 50));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(300);
    expect(reasonOf(call.error)).toBe("UPSTREAM_UNAVAILABLE");
    expect([a.calls.length, b.calls.length]).toEqual([1, 1]);
  });

  it("when the first fails after the hedge started, the hedge's answer is taken", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(fail(upstreamError(failures.serverError), 120));
    b.script(answer("hedge", 100));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(200);
    expect(call.value?.route).toMatchObject({ provider: "b", attempts: 2, hedged: true });
  });

  it("a first failure before the delay is retried / failed over like any other: no race", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(fail(upstreamError(failures.serverError), 10));
    b.script(answer("b"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(10);
    expect(call.value?.route).toMatchObject({ provider: "b", attempts: 2, hedged: false });
    expect(b.calls[0]!.at - a.calls[0]!.at).toBe(10);
  });

  it("skips a partner whose breaker is open: the first attempt runs on alone", async () => {
    const { a, b, breakers } = start({ delayMs: 100 });
    b.script(fail(upstreamError(failures.serverError)));
    await expect(rig.complete("bonly")).rejects.toMatchObject({ code: Code.Unavailable });
    await vi.advanceTimersByTimeAsync(0);
    expect(breakers.states()["b/model-b"]).toBe("open");
    a.script(answer("a alone", 500));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(500);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 1, hedged: false });
    expect(b.calls).toHaveLength(1);
  });

  it("a cancel during the delay aborts the first attempt and starts no hedge", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(hang());
    b.otherwise(answer("never"));
    const context = callerContext();
    const call = track(rig.complete("chat", context));
    await vi.advanceTimersByTimeAsync(50);
    context.cancel();
    await vi.advanceTimersByTimeAsync(1_000);
    expect((call.error as ConnectError).code).toBe(Code.Canceled);
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 50);
    expect(b.calls).toHaveLength(0);
  });

  it("a cancel during the race aborts both attempts and charges neither breaker", async () => {
    const { a, b, breakers } = start({ delayMs: 100 });
    a.script(hang());
    b.script(hang());
    const context = callerContext();
    const call = track(rig.complete("chat", context));
    await vi.advanceTimersByTimeAsync(150);
    context.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect((call.error as ConnectError).code).toBe(Code.Canceled);
    expect([a.calls[0]!.abortedAt! - a.calls[0]!.at, b.calls[0]!.abortedAt! - a.calls[0]!.at]).toEqual([150, 150]);
    expect(breakers.states()).toEqual({ "a/model-a": "closed", "b/model-b": "closed" });
  });

  it("with a percentile, hedges at the fixed delay until 20 answers were observed, then at their percentile", async () => {
    const { a, b } = start({ delayMs: 10_000, percentile: 95 });
    for (let i = 1; i <= 19; i++) {
      a.script(answer("a", i * 10));
      const call = track(rig.complete());
      await vi.advanceTimersByTimeAsync(i * 10);
      expect(call.value?.route?.hedged).toBe(false);
    }
    // 19 samples: still the fixed 10 s, so a 5 s answer is not hedged (and is the 20th sample).
    a.script(answer("a", 5_000));
    const twentieth = track(rig.complete());
    await vi.advanceTimersByTimeAsync(5_000);
    expect(twentieth.value?.route).toMatchObject({ provider: "a", hedged: false });
    expect(b.calls).toHaveLength(0);
    // 10, 20, …, 190, 5000: the nearest-rank p95 is the 19th, 190 ms.
    a.script(hang());
    b.script(answer("hedge"));
    const hedged = track(rig.complete());
    await vi.advanceTimersByTimeAsync(189);
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(b.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(hedged.value?.route).toMatchObject({ provider: "b", hedged: true, attempts: 2 });
  });
});

describe("hedging (streams)", () => {
  const kinds = (events: Array<{ event: { case: string | undefined } }>) => events.map((e) => e.event.case);
  const routeOf = (events: StreamCompleteResponse[]) => {
    const last = events.at(-1)?.event;
    return last?.case === "done" ? last.value.route : undefined;
  };

  it("the first token wins: one start, from the winner; the loser is aborted and closed; done and trailers say hedged", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(stream(["slow"], "done", { startAfterMs: 5_000 }));
    b.script(stream(["fast", " answer"], "done", { gapMs: 10 }));
    const context = callerContext();
    const outcome = track(drain(rig.stream("chat", context)));
    await vi.advanceTimersByTimeAsync(110);
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 110);
    expect(a.calls[0]!.returned).toBe(true);
    await vi.advanceTimersByTimeAsync(20);
    const { events, error } = outcome.value!;
    expect(error).toBeUndefined();
    expect(kinds(events)).toEqual(["start", "delta", "delta", "done"]);
    expect(events[0]!.event.value).toMatchObject({ provider: "b" });
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", attempts: 2, hedged: true });
    expect(context.responseTrailer.get("sluice-hedged")).toBe("true");
    expect(context.responseTrailer.get("sluice-provider")).toBe("b");
  });

  it("a loser whose first token was already on its way when it was aborted is closed, not leaked", async () => {
    const { a, b, limiter } = start({ delayMs: 100 });
    a.script(stream(["late"], "done", { gapMs: 150, heedAbort: false }));
    b.script(stream(["fast"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(100);
    expect(routeOf(outcome.value!.events)).toMatchObject({ provider: "b", hedged: true });
    expect(a.calls[0]!.returned).toBe(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(a.calls[0]!.returned).toBe(true);
    expect(limiter.counts()).toEqual({});
  });

  it("a start is not a token: a first deployment that sent only its start is still hedged", async () => {
    const { a, b } = start({ delayMs: 100 });
    a.script(stream(["late"], "done", { gapMs: 1_000 }));
    b.script(stream(["quick"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(100);
    const done = outcome.value!.events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", hedged: true });
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 100);
  });

  it("hedges streams at the observed percentile of time to first token", async () => {
    const { a, b } = start({ delayMs: 10_000, percentile: 95 });
    for (let i = 1; i <= 20; i++) {
      a.script(stream(["a"], "done", { startAfterMs: i * 10 }));
      const outcome = track(drain(rig.stream()));
      await vi.advanceTimersByTimeAsync(i * 10);
      expect(routeOf(outcome.value!.events)).toMatchObject({ provider: "a", hedged: false, attempts: 1 });
    }
    // First tokens within the delay: never hedged.
    expect(b.calls).toHaveLength(0);
    a.script(hang());
    b.script(stream(["hedge"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(189);
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    const done = outcome.value!.events.at(-1)!.event;
    expect(done.case === "done" && done.value.route).toMatchObject({ provider: "b", hedged: true });
    expect(a.calls).toHaveLength(21);
  });
});
