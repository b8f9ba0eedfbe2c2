import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
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

/**
 * One attempt's limits through the call runner: per-attempt timeouts (firstTokenMs,
 * idleMs, totalMs) become a retryable UPSTREAM_TIMEOUT of that attempt only; the caller's
 * cancel and deadline abort the upstream signal at once and stop every retry and wait.
 */

let rig: RunnerRig;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  rig?.close();
  vi.useRealTimers();
});

const kinds = (events: Array<{ event: { case: string | undefined } }>) => events.map((e) => e.event.case);

function start(timeouts: Record<string, number>, retry: Record<string, number> = { maxAttempts: 1 }): RunnerRig {
  rig = createRunnerRig({
    chat: {
      deployments: [
        { provider: "a", model: "model-a", timeouts },
        { provider: "b", model: "model-b" },
      ],
      retry: { initialBackoffMs: 100, ...retry },
    },
    solo: { deployments: [{ provider: "a", model: "model-a", timeouts }], retry: { maxAttempts: 1 } },
  });
  return rig;
}

describe("per-attempt timeouts", () => {
  it("firstTokenMs (unary): a silent deployment is aborted upstream at the limit and the next one answers", async () => {
    const { a, b } = start({ firstTokenMs: 200 });
    a.script(hang());
    b.script(answer("from b"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(199);
    expect(a.calls[0]!.abortedAt).toBeUndefined();
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 200);
    expect(b.calls[0]!.at).toBe(a.calls[0]!.at + 200);
    expect(call.value?.route).toMatchObject({ provider: "b", attempts: 2 });
  });

  it("is UNAVAILABLE UPSTREAM_TIMEOUT naming the limit when nothing else can serve", async () => {
    const { a } = start({ firstTokenMs: 200 });
    a.script(hang());
    const call = track(rig.complete("solo"));
    await vi.advanceTimersByTimeAsync(200);
    expect((call.error as ConnectError).code).toBe(Code.Unavailable);
    expect(reasonOf(call.error)).toBe("UPSTREAM_TIMEOUT");
    expect((call.error as ConnectError).rawMessage).toBe("provider a attempt timed out: no first token within 200 ms");
  });

  it("is retryable on the same deployment, after the backoff", async () => {
    const { a, b } = start({ firstTokenMs: 200 }, { maxAttempts: 2 });
    a.script(hang(), answer("second try"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(250);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 2 });
    // Timed out at 200, then 0.5 × 100 ms of backoff.
    expect(a.calls.map((c) => c.at - a.calls[0]!.at)).toEqual([0, 250]);
    expect(b.calls).toHaveLength(0);
  });

  it("firstTokenMs (stream): a start without a first token in time is retried elsewhere; the caller sees one start", async () => {
    const { a, b } = start({ firstTokenMs: 200 });
    a.script(stream(["late"], "done", { gapMs: 500 }));
    b.script(stream(["from b"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(200);
    expect(outcome.value?.error).toBeUndefined();
    expect(kinds(outcome.value!.events)).toEqual(["start", "delta", "done"]);
    expect(outcome.value!.events[0]!.event.value).toMatchObject({ provider: "b" });
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 200);
    expect(a.calls[0]!.returned).toBe(true);
  });

  it("firstTokenMs stops counting once the first token arrived", async () => {
    const { a } = start({ firstTokenMs: 200 });
    a.script(stream(["1", "2", "3", "4", "5"], "done", { gapMs: 100 }));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(600);
    expect(outcome.value?.error).toBeUndefined();
    expect(kinds(outcome.value!.events)).toHaveLength(7);
  });

  it("a finished attempt stops its timers and lets go of the caller's signal", async () => {
    const { a } = start({ totalMs: 500 });
    a.script(answer("in time", 100));
    const context = callerContext();
    const call = track(rig.complete("solo", context));
    await vi.advanceTimersByTimeAsync(100);
    expect(call.value?.route?.provider).toBe("a");
    await vi.advanceTimersByTimeAsync(1_000);
    context.cancel();
    expect(a.calls[0]!.signal.aborted).toBe(false);
  });

  it("is the attempt's failure whatever the adapter reports when its request is aborted", async () => {
    const { a } = start({ firstTokenMs: 200, idleMs: 200 });
    const adapterWords = new ConnectError("request aborted", Code.Canceled);
    a.script(
      hang(adapterWords),
      stream([], { hangThenAbortWith: adapterWords }),
      stream(["one"], { hangThenAbortWith: adapterWords }),
    );
    const unary = track(rig.complete("solo"));
    await vi.advanceTimersByTimeAsync(200);
    expect(reasonOf(unary.error)).toBe("UPSTREAM_TIMEOUT");
    // Before the first token (start only), then after it (idle).
    const early = track(drain(rig.stream("solo")));
    await vi.advanceTimersByTimeAsync(200);
    expect(reasonOf(early.value?.error)).toBe("UPSTREAM_TIMEOUT");
    const late = track(drain(rig.stream("solo")));
    await vi.advanceTimersByTimeAsync(200);
    expect(kinds(late.value!.events)).toEqual(["start", "delta"]);
    expect(reasonOf(late.value?.error)).toBe("UPSTREAM_TIMEOUT");
  });

  it("idleMs: a stream stalled after its first token ends with UPSTREAM_TIMEOUT (never OK, never retried)", async () => {
    const { a, b } = start({ idleMs: 200 }, { maxAttempts: 3 });
    a.script(stream(["one"], "hang", { gapMs: 300 }));
    b.otherwise(stream(["never"]));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(499);
    expect(outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const { events, error } = outcome.value!;
    expect(kinds(events)).toEqual(["start", "delta"]);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_TIMEOUT");
    expect((error as ConnectError).rawMessage).toContain("stream idle for 200 ms");
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 500);
    expect(a.calls).toHaveLength(1);
    expect(b.calls).toHaveLength(0);
  });

  it("idleMs counts the upstream's silence, not the time the caller takes to read an event", async () => {
    rig = createRunnerRig(
      { chat: { deployments: [{ provider: "a", model: "model-a", timeouts: { idleMs: 200 } }] } },
      { resilience: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 } } },
    );
    rig.a.script(stream(["1", "2", "3"], "done", { gapMs: 50 }));
    const events = rig.stream();
    const seen: Array<string | undefined> = [];
    for (let i = 0; i < 5; i++) {
      const pending = track(events.next());
      await vi.advanceTimersByTimeAsync(50);
      expect(pending.error).toBeUndefined();
      seen.push(pending.value?.value?.event.case);
      // A slow caller (HTTP/2 flow control, a stalled client) holds each event longer than idleMs.
      await vi.advanceTimersByTimeAsync(300);
    }
    expect(seen).toEqual(["start", "delta", "delta", "delta", "done"]);
    expect(rig.a.calls[0]!.abortedAt).toBeUndefined();
    expect(rig.breakers.states()["a/model-a"]).toBe("closed");
  });

  it("idleMs restarts with every event: a long stream with short gaps completes", async () => {
    const { a } = start({ idleMs: 200 });
    a.script(stream(["1", "2", "3", "4", "5"], "done", { gapMs: 150 }));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(900);
    expect(outcome.value?.error).toBeUndefined();
    expect(kinds(outcome.value!.events)).toEqual(["start", "delta", "delta", "delta", "delta", "delta", "done"]);
  });

  it("totalMs (unary): a slow answer is abandoned at the limit and the next deployment answers", async () => {
    const { a, b } = start({ totalMs: 500 });
    a.script(answer("too slow", 1_000));
    b.script(answer("from b"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(500);
    expect(call.value?.route).toMatchObject({ provider: "b", attempts: 2 });
    expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 500);
  });

  it("totalMs (stream) bounds the whole attempt, after the first token too", async () => {
    const { a } = start({ totalMs: 550 });
    a.script(stream(["1", "2", "3", "4", "5", "6", "7", "8"], "done", { gapMs: 100 }));
    const outcome = track(drain(rig.stream()));
    await vi.advanceTimersByTimeAsync(550);
    const { events, error } = outcome.value!;
    expect(kinds(events)).toEqual(["start", "delta", "delta", "delta", "delta", "delta"]);
    expect(reasonOf(error)).toBe("UPSTREAM_TIMEOUT");
    expect((error as ConnectError).rawMessage).toContain("no answer within 550 ms");
  });
});

describe("the caller's cancel and deadline", () => {
  for (const timeouts of [{}, { firstTokenMs: 10_000 }] as Array<Record<string, number>>) {
    const signal = Object.keys(timeouts).length === 0 ? "the caller's signal" : "an attempt's own signal";
    it(`a cancel aborts the upstream request at once (${signal}), and nothing is retried`, async () => {
      const { a, b } = start(timeouts, { maxAttempts: 3 });
      a.script(hang());
      b.otherwise(answer("never"));
      const context = callerContext();
      const call = track(rig.complete("chat", context));
      await vi.advanceTimersByTimeAsync(100);
      context.cancel();
      expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 100);
      await vi.advanceTimersByTimeAsync(0);
      expect((call.error as ConnectError).code).toBe(Code.Canceled);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(a.calls).toHaveLength(1);
      expect(b.calls).toHaveLength(0);
    });

    it(`the deadline aborts the upstream request when it passes (${signal}): DEADLINE_EXCEEDED, not a timeout`, async () => {
      const { a, b } = start(timeouts, { maxAttempts: 3 });
      a.script(hang());
      b.otherwise(answer("never"));
      const call = track(rig.complete("chat", callerContext({ timeoutMs: 300 })));
      await vi.advanceTimersByTimeAsync(299);
      expect(a.calls[0]!.abortedAt).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      expect(a.calls[0]!.abortedAt).toBe(a.calls[0]!.at + 300);
      expect((call.error as ConnectError).code).toBe(Code.DeadlineExceeded);
      await vi.advanceTimersByTimeAsync(60_000);
      expect([a.calls.length, b.calls.length]).toEqual([1, 0]);
    });
  }

  for (const how of ["cancel", "deadline"] as const) {
    it(`a ${how} during a Retry-After wait ends the call at once, without another request`, async () => {
      const { a, b } = start({}, { maxAttempts: 3 });
      a.script(fail(upstreamError(failures.rateLimited, { retryAfterMs: 5_000 })));
      b.otherwise(answer("never"));
      const context = callerContext(how === "deadline" ? { timeoutMs: 300 } : {});
      const call = track(rig.complete("chat", context));
      await vi.advanceTimersByTimeAsync(299);
      expect(call.settled).toBe(false);
      if (how === "cancel") context.cancel();
      await vi.advanceTimersByTimeAsync(how === "cancel" ? 0 : 1);
      expect((call.error as ConnectError).code).toBe(how === "cancel" ? Code.Canceled : Code.DeadlineExceeded);
      await vi.advanceTimersByTimeAsync(10_000);
      expect([a.calls.length, b.calls.length]).toEqual([1, 0]);
    });
  }

  it("the deadline ends a backoff wait when it passes, without another request", async () => {
    const { a, b } = start({}, { maxAttempts: 3, initialBackoffMs: 8_000, maxBackoffMs: 8_000 });
    a.script(fail(upstreamError(failures.serverError)));
    b.otherwise(answer("never"));
    const call = track(rig.complete("chat", callerContext({ timeoutMs: 300 })));
    await vi.advanceTimersByTimeAsync(299);
    expect(call.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((call.error as ConnectError).code).toBe(Code.DeadlineExceeded);
    await vi.advanceTimersByTimeAsync(10_000);
    expect([a.calls.length, b.calls.length]).toEqual([1, 0]);
  });

  it("an already-cancelled call hands the adapter an aborted signal and goes no further", async () => {
    const { a, b } = start({ firstTokenMs: 100 }, { maxAttempts: 3 });
    a.otherwise(hang());
    b.otherwise(answer("never"));
    const context = callerContext();
    context.cancel();
    await expect(rig.complete("chat", context)).rejects.toMatchObject({ code: Code.Canceled });
    expect(a.calls.map((c) => c.signal.aborted)).toEqual([true]);
    expect(b.calls).toHaveLength(0);
  });
});
