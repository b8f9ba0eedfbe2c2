import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { failures } from "../errors/failure-table.js";
import {
  answer,
  callerContext,
  createRunnerRig,
  fail,
  hang,
  reasonOf,
  track,
  upstreamError,
  type RunnerRig,
} from "../../test/helpers/fake-provider.js";

/** Circuit breakers and in-flight limits as the call runner uses them, over fake providers and fake time. */

let rig: RunnerRig;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  rig?.close();
  vi.useRealTimers();
});

const serverError = () => upstreamError(failures.serverError, { status: 500 });

function start(breaker: Record<string, number>, extra: Record<string, unknown> = {}): RunnerRig {
  rig = createRunnerRig(
    {
      chat: {
        deployments: [
          { provider: "a", model: "model-a" },
          { provider: "b", model: "model-b" },
        ],
        retry: { maxAttempts: 1 },
        ...extra,
      },
    },
    { resilience: { breaker: { rollingWindowMs: 10_000, resetTimeoutMs: 30_000, ...breaker } } },
  );
  return rig;
}

describe("call runner: circuit breakers", () => {
  it("opens a deployment's breaker after volumeThreshold failures by its fault, then skips it without calling it", async () => {
    const { a, b, breakers } = start({ volumeThreshold: 2, errorThresholdPercentage: 50 });
    a.otherwise(fail(serverError()));
    b.otherwise(answer("from b"));
    expect((await rig.complete()).route).toMatchObject({ provider: "b", attempts: 2 });
    await vi.advanceTimersByTimeAsync(0);
    expect(breakers.states()["a/model-a"]).toBe("closed");
    expect((await rig.complete()).route).toMatchObject({ provider: "b", attempts: 2 });
    await vi.advanceTimersByTimeAsync(0);
    expect(breakers.states()).toEqual({ "a/model-a": "open", "b/model-b": "closed" });
    const skipped = await rig.complete();
    expect(skipped.route).toMatchObject({ provider: "b", attempts: 1 });
    expect(a.calls).toHaveLength(2);
  });

  it("half-opens after resetTimeoutMs, lets exactly one probe through, and closes when it succeeds", async () => {
    const { a, b, breakers } = start({ volumeThreshold: 1, errorThresholdPercentage: 50 });
    a.script(fail(serverError()));
    b.otherwise(answer("from b"));
    await rig.complete();
    await vi.advanceTimersByTimeAsync(29_999);
    expect(breakers.states()["a/model-a"]).toBe("open");
    expect((await rig.complete()).route?.provider).toBe("b");
    expect(a.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(breakers.states()["a/model-a"]).toBe("half-open");
    a.script(answer("a is back", 100), answer("a again"));
    const probe = track(rig.complete());
    await vi.advanceTimersByTimeAsync(0);
    expect(a.calls).toHaveLength(2);
    // While the probe is out, everyone else skips a.
    expect((await rig.complete()).route).toMatchObject({ provider: "b", attempts: 1 });
    expect(a.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(probe.value?.route).toMatchObject({ provider: "a", attempts: 1 });
    expect(breakers.states()["a/model-a"]).toBe("closed");
    expect((await rig.complete()).route?.provider).toBe("a");
  });

  it("re-opens when the probe fails, and the call fails over", async () => {
    const { a, breakers } = start({ volumeThreshold: 1, errorThresholdPercentage: 50 });
    a.otherwise(fail(serverError()));
    rig.b.otherwise(answer("from b"));
    await rig.complete();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(breakers.states()["a/model-a"]).toBe("half-open");
    expect((await rig.complete()).route).toMatchObject({ provider: "b", attempts: 2 });
    await vi.advanceTimersByTimeAsync(0);
    expect(breakers.states()["a/model-a"]).toBe("open");
    expect(a.calls).toHaveLength(2);
  });

  it("answers UNAVAILABLE ALL_DEPLOYMENTS_UNAVAILABLE naming the model when every deployment is open", async () => {
    const { a, b } = start({ volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.otherwise(fail(serverError()));
    b.otherwise(fail(serverError()));
    const first = await rig.complete().catch((err: unknown) => err);
    expect(reasonOf(first)).toBe("UPSTREAM_UNAVAILABLE");
    await vi.advanceTimersByTimeAsync(0);
    const error = ConnectError.from(await rig.complete().catch((err: unknown) => err));
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("ALL_DEPLOYMENTS_UNAVAILABLE");
    expect(error.rawMessage).toContain('"chat"');
    expect([a.calls.length, b.calls.length]).toEqual([1, 1]);
  });

  it("answers degraded (0 attempts) instead when every deployment is open and a degraded message is set", async () => {
    const { a, b } = start({ volumeThreshold: 1, errorThresholdPercentage: 1 }, { degraded: { message: "busy" } });
    a.otherwise(fail(serverError()));
    b.otherwise(fail(serverError()));
    expect((await rig.complete()).route).toMatchObject({ degraded: true, attempts: 2 });
    await vi.advanceTimersByTimeAsync(0);
    expect((await rig.complete()).route).toMatchObject({ degraded: true, attempts: 0 });
    expect([a.calls.length, b.calls.length]).toEqual([1, 1]);
  });

  it("never opens on the caller's faults: a 400, a 429, the caller's cancel and deadline — but does on a 5xx", async () => {
    const { a, b, breakers } = start(
      { volumeThreshold: 2, errorThresholdPercentage: 1 },
      { deployments: [{ provider: "a", model: "model-a" }] },
    );
    const state = async () => {
      await vi.advanceTimersByTimeAsync(0);
      return breakers.states()["a/model-a"];
    };
    for (let i = 0; i < 3; i++) {
      a.script(fail(upstreamError(failures.badRequest, { status: 400 })));
      await expect(rig.complete()).rejects.toMatchObject({ code: Code.InvalidArgument });
      a.script(fail(upstreamError(failures.rateLimited, { status: 429 })));
      await expect(rig.complete()).rejects.toMatchObject({ code: Code.ResourceExhausted });
      a.script(hang());
      const context = callerContext();
      const cancelled = track(rig.complete("chat", context));
      await vi.advanceTimersByTimeAsync(10);
      context.cancel();
      await vi.advanceTimersByTimeAsync(0);
      expect((cancelled.error as ConnectError).code).toBe(Code.Canceled);
      a.script(hang());
      const late = track(rig.complete("chat", callerContext({ timeoutMs: 50 })));
      await vi.advanceTimersByTimeAsync(50);
      expect((late.error as ConnectError).code).toBe(Code.DeadlineExceeded);
    }
    expect(a.calls).toHaveLength(12);
    expect(await state()).toBe("closed");
    // The control: at this threshold one failure by the deployment's fault opens it.
    a.script(fail(serverError()));
    await expect(rig.complete()).rejects.toMatchObject({ code: Code.Unavailable });
    expect(await state()).toBe("open");
    expect(b.calls).toHaveLength(0);
  });

  it("does not charge a failure that crosses the caller's cancel (the answer was on its way when the caller left)", async () => {
    const { a, breakers } = start({ volumeThreshold: 1, errorThresholdPercentage: 1 });
    a.script(fail(serverError(), 100, { heedAbort: false }));
    const context = callerContext();
    const call = track(rig.complete("chat", context));
    await vi.advanceTimersByTimeAsync(50);
    context.cancel();
    await vi.advanceTimersByTimeAsync(50);
    expect((call.error as ConnectError).code).toBe(Code.Canceled);
    expect(breakers.states()["a/model-a"]).toBe("closed");
    expect(rig.b.calls).toHaveLength(0);
  });

  it("counts a per-attempt timeout against the deployment", async () => {
    rig = createRunnerRig(
      {
        chat: { deployments: [{ provider: "a", model: "model-a", timeouts: { firstTokenMs: 100 } }], retry: { maxAttempts: 1 } },
      },
      { resilience: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 } } },
    );
    rig.a.script(hang());
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(100);
    expect(reasonOf(call.error)).toBe("UPSTREAM_TIMEOUT");
    expect(rig.breakers.states()["a/model-a"]).toBe("open");
  });
});

describe("call runner: maxInFlight", () => {
  function startLimited(): RunnerRig {
    rig = createRunnerRig(
      {
        chat: {
          deployments: [
            { provider: "a", model: "model-a", maxInFlight: 1 },
            { provider: "b", model: "model-b" },
          ],
        },
        solo: { deployments: [{ provider: "a", model: "model-a", maxInFlight: 1 }] },
        mixed: {
          deployments: [
            { provider: "a", model: "model-a", maxInFlight: 1 },
            { provider: "c", model: "model-c" },
          ],
          retry: { maxAttempts: 1 },
        },
      },
      { resilience: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 } } },
    );
    return rig;
  }

  it("skips a deployment at its limit (counted across aliases), ALL_DEPLOYMENTS_BUSY when nothing else can serve, and frees the slot after", async () => {
    const { a, b, limiter } = startLimited();
    a.script(answer("held", 1_000), answer("a again"));
    b.otherwise(answer("from b"));
    const held = track(rig.complete());
    await vi.advanceTimersByTimeAsync(0);
    expect(limiter.counts()).toEqual({ "a/model-a": 1 });
    expect((await rig.complete()).route).toMatchObject({ provider: "b", attempts: 1 });
    const busy = ConnectError.from(await rig.complete("solo").catch((err: unknown) => err));
    expect(busy.code).toBe(Code.Unavailable);
    expect(reasonOf(busy)).toBe("ALL_DEPLOYMENTS_BUSY");
    expect(busy.rawMessage).toBe('every deployment of model "solo" is at its in-flight limit; retry later');
    expect(a.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(held.value?.route?.provider).toBe("a");
    expect(limiter.counts()).toEqual({ "a/model-a": 0 });
    expect((await rig.complete("solo")).route?.provider).toBe("a");
  });

  it("says so when the rest are open: busy or unavailable", async () => {
    const { a, c } = startLimited();
    c.script(fail(serverError()));
    a.script(fail(upstreamError(failures.rateLimited)), hang());
    // c's breaker opens; a's does not (a 429 is not its fault).
    await expect(rig.complete("mixed")).rejects.toMatchObject({ code: Code.Unavailable });
    await vi.advanceTimersByTimeAsync(0);
    expect(rig.breakers.states()).toEqual({ "a/model-a": "closed", "c/model-c": "open" });
    const context = callerContext();
    const holding = track(rig.complete("solo", context));
    await vi.advanceTimersByTimeAsync(0);
    const busy = ConnectError.from(await rig.complete("mixed").catch((err: unknown) => err));
    expect(reasonOf(busy)).toBe("ALL_DEPLOYMENTS_BUSY");
    expect(busy.rawMessage).toContain("in-flight limit or unavailable (circuit open)");
    context.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect(holding.settled).toBe(true);
    expect(rig.limiter.counts()).toEqual({ "a/model-a": 0 });
  });

  it("skipping a limited deployment whose breaker is open takes no slot", async () => {
    const { a, limiter } = startLimited();
    a.script(fail(serverError()));
    const first = track(rig.complete("solo"));
    // Its retry finds the breaker open: skipped.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(reasonOf(first.error)).toBe("UPSTREAM_UNAVAILABLE");
    expect(a.calls).toHaveLength(1);
    for (let i = 0; i < 2; i++) {
      const error = await rig.complete("solo").catch((err: unknown) => err);
      expect(reasonOf(error)).toBe("ALL_DEPLOYMENTS_UNAVAILABLE");
    }
    expect(limiter.counts()).toEqual({ "a/model-a": 0 });
  });

  it("gives the slot back after a failed attempt and after a caller's cancel", async () => {
    const { a, limiter } = startLimited();
    a.script(fail(upstreamError(failures.badRequest)), hang());
    await expect(rig.complete("solo")).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(limiter.counts()).toEqual({ "a/model-a": 0 });
    const context = callerContext();
    const call = track(rig.complete("solo", context));
    await vi.advanceTimersByTimeAsync(0);
    expect(limiter.counts()).toEqual({ "a/model-a": 1 });
    context.cancel();
    await vi.advanceTimersByTimeAsync(0);
    expect((call.error as ConnectError).code).toBe(Code.Canceled);
    expect(limiter.counts()).toEqual({ "a/model-a": 0 });
  });
});
