import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { failures } from "../errors/failure-table.js";
import {
  answer,
  callerContext,
  createRunnerRig,
  fail,
  reasonOf,
  track,
  upstreamError,
  type RigOptions,
  type RunnerRig,
} from "../../test/helpers/fake-provider.js";

/**
 * The call runner's retry and fail-over decisions over fake providers, under fake timers:
 * every wait is exact and costs no wall time. Streams, hedging, breakers and timeouts have
 * files of their own (call-runner-*.test.ts, hedge-race.test.ts, attempt.test.ts).
 */

let rig: RunnerRig;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  rig?.close();
  vi.useRealTimers();
});

const two = (extra: Record<string, unknown> = {}) => ({
  chat: {
    deployments: [
      { provider: "a", model: "model-a" },
      { provider: "b", model: "model-b" },
    ],
    retry: { maxAttempts: 2, initialBackoffMs: 100, maxBackoffMs: 1_000 },
    ...extra,
  },
});

function start(models: Record<string, unknown>, options?: RigOptions): RunnerRig {
  rig = createRunnerRig(models, options);
  return rig;
}

const text = (r: { message?: { content: Array<{ part: { value?: unknown } }> } | undefined }) =>
  r.message?.content[0]?.part.value;
const serverError = () => upstreamError(failures.serverError, { status: 500 });

describe("call runner: retries", () => {
  it("answers from the first deployment on the first try, with its route in the response and the sluice-* headers", async () => {
    const { a, b } = start(two());
    a.script(answer("hello"));
    const context = callerContext();
    const response = await rig.complete("chat", context);
    expect(text(response)).toBe("hello");
    expect(response.route).toMatchObject({
      provider: "a",
      upstreamModel: "model-a",
      attempts: 1,
      fallbackModel: "",
      degraded: false,
      hedged: false,
    });
    expect(Object.fromEntries(context.responseHeader)).toEqual({
      "sluice-provider": "a",
      "sluice-upstream-model": "model-a",
      "sluice-attempts": "1",
    });
    expect(a.calls.map((c) => c.model)).toEqual(["model-a"]);
    expect(b.calls).toHaveLength(0);
  });

  it("retries a retryable failure on the same deployment after full-jitter backoff: random × initialBackoffMs, then × 2", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 1_000 } }), {
      random: () => 0.25,
    });
    a.script(fail(serverError()), fail(serverError()), answer("third time"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(24);
    expect(a.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    // 0.25 × 100 = 25 ms after the first failure.
    expect(a.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(49);
    expect(a.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    // 0.25 × 200 = 50 ms after the second.
    expect(a.calls.map((c) => c.at - a.calls[0]!.at)).toEqual([0, 25, 75]);
    await vi.advanceTimersByTimeAsync(0);
    expect(text(call.value!)).toBe("third time");
    expect(call.value!.route).toMatchObject({ provider: "a", attempts: 3 });
    expect(b.calls).toHaveLength(0);
  });

  it("caps the backoff at maxBackoffMs", async () => {
    const { a } = start(two({ retry: { maxAttempts: 3, initialBackoffMs: 800, maxBackoffMs: 1_000 } }), { random: () => 0.99 });
    a.script(fail(serverError()), fail(serverError()), answer("ok"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(10_000);
    expect(call.value?.route?.attempts).toBe(3);
    // 0.99 × 800, then 0.99 × min(1000, 1600).
    expect(a.calls.map((c) => c.at - a.calls[0]!.at)).toEqual([0, 792, 792 + 990]);
  });

  it("waits exactly the Retry-After the provider asked for, never the (shorter) backoff", async () => {
    const { a, b } = start(two());
    a.script(fail(upstreamError(failures.rateLimited, { status: 429, retryAfterMs: 3_000 })), answer("after wait"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(2_999);
    expect(a.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 2 });
    expect(b.calls).toHaveLength(0);
  });

  it("fails over at once when Retry-After is longer than maxRetryAfterMs", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3, maxRetryAfterMs: 2_000 } }));
    a.script(fail(upstreamError(failures.rateLimited, { status: 429, retryAfterMs: 2_001 })));
    b.script(answer("from b"));
    const response = await rig.complete();
    expect(text(response)).toBe("from b");
    expect(response.route).toMatchObject({ provider: "b", attempts: 2 });
    expect(a.calls).toHaveLength(1);
    expect(b.calls[0]!.at).toBe(a.calls[0]!.at);
  });

  it("fails over instead of waiting past totalBudgetMs (the call's time so far counts)", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3, totalBudgetMs: 1_000 } }));
    // Fails after 600 ms; a 401 ms wait would end at 1001 > 1000.
    a.script(fail(upstreamError(failures.rateLimited, { retryAfterMs: 401 }), 600));
    b.script(answer("from b"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(600);
    expect(call.value?.route).toMatchObject({ provider: "b", attempts: 2 });
    expect(b.calls[0]!.at - a.calls[0]!.at).toBe(600);
  });

  it("retries when the wait still fits in totalBudgetMs", async () => {
    const { a } = start(two({ retry: { maxAttempts: 3, totalBudgetMs: 1_000 } }));
    a.script(fail(upstreamError(failures.rateLimited, { retryAfterMs: 400 }), 600), answer("fits"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(call.value?.route).toMatchObject({ provider: "a", attempts: 2 });
    expect(a.calls[1]!.at - a.calls[0]!.at).toBe(1_000);
  });

  it("makes at most maxAttempts attempts per deployment, then fails over; the last error when every one failed", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 10 } }));
    a.otherwise(fail(serverError()));
    b.otherwise(fail(upstreamError(failures.overloaded, { status: 529 })));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(a.calls).toHaveLength(3);
    expect(b.calls).toHaveLength(3);
    expect(call.error).toBeInstanceOf(ConnectError);
    expect((call.error as ConnectError).code).toBe(Code.Unavailable);
    expect(reasonOf(call.error)).toBe("UPSTREAM_OVERLOADED");
  });

  it("never retries nor fails over a non-retryable failure (a bad request): one attempt, its error", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3 } }));
    a.script(fail(upstreamError(failures.badRequest, { status: 400 })));
    b.otherwise(answer("never"));
    const call = track(rig.complete());
    await vi.advanceTimersByTimeAsync(60_000);
    expect((call.error as ConnectError).code).toBe(Code.InvalidArgument);
    expect(reasonOf(call.error)).toBe("UPSTREAM_BAD_REQUEST");
    expect(a.calls).toHaveLength(1);
    expect(b.calls).toHaveLength(0);
  });

  it("fails an error that is not an upstream failure (a bug, a gateway error) at once", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3 } }));
    a.script(fail(new ConnectError("adapter bug", Code.Internal)));
    b.otherwise(answer("never"));
    await expect(rig.complete()).rejects.toMatchObject({ code: Code.Internal, rawMessage: "adapter bug" });
    expect(b.calls).toHaveLength(0);
  });

  it("moves a fail-over-only failure (401 UPSTREAM_AUTH) to the next deployment without retrying the same one", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3 } }));
    a.script(fail(upstreamError(failures.upstreamAuth, { status: 401 })));
    b.script(answer("from b"));
    const response = await rig.complete();
    expect(response.route).toMatchObject({ provider: "b", upstreamModel: "model-b", attempts: 2, fallbackModel: "" });
    expect(a.calls).toHaveLength(1);
    expect(b.calls[0]!.at).toBe(a.calls[0]!.at);
  });

  it("fails over instead of retrying when the process-wide retry budget is spent", async () => {
    const { a, b } = start(two({ retry: { maxAttempts: 3 } }), {
      resilience: { retryBudget: { ratio: 0, minRetriesPerSecond: 0 } },
    });
    a.otherwise(fail(serverError()));
    b.script(answer("from b"));
    const response = await rig.complete();
    expect(response.route).toMatchObject({ provider: "b", attempts: 2 });
    expect(a.calls).toHaveLength(1);
    expect(rig.retryBudget.stats).toMatchObject({ requests: 1, retries: 0, denied: 1 });
  });

  it("counts one request per call toward the retry budget, and each granted retry", async () => {
    const { a } = start(two(), { resilience: { retryBudget: { ratio: 0.5, minRetriesPerSecond: 0 } } });
    a.script(answer("one"), fail(serverError()), answer("two"));
    await rig.complete();
    const second = track(rig.complete());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(second.value?.route?.attempts).toBe(2);
    expect(rig.retryBudget.stats).toMatchObject({ requests: 2, retries: 1, denied: 0 });
  });
});

describe("call runner: fallbacks and degraded answers", () => {
  const withFallback = (extra: Record<string, unknown> = {}) => ({
    chat: { deployments: [{ provider: "a", model: "small" }], fallbacks: ["large"], retry: { maxAttempts: 1 }, ...extra },
    large: { deployments: [{ provider: "b", model: "large" }] },
  });

  it("falls back to the next alias when every deployment of the requested one failed, and names it", async () => {
    const { a, b } = start(withFallback());
    a.script(fail(serverError()));
    b.script(answer("backup answer"));
    const context = callerContext();
    const response = await rig.complete("chat", context);
    expect(text(response)).toBe("backup answer");
    expect(response.route).toMatchObject({ provider: "b", upstreamModel: "large", fallbackModel: "large", attempts: 2 });
    expect(context.responseHeader.get("sluice-fallback-model")).toBe("large");
  });

  it("falls back on a context-length error when fallbackOnContextLength is on", async () => {
    const { a, b } = start(withFallback({ fallbackOnContextLength: true }));
    a.script(fail(upstreamError(failures.contextLength, { status: 400 })));
    b.script(answer("long answer"));
    const response = await rig.complete();
    expect(response.route).toMatchObject({ provider: "b", fallbackModel: "large" });
    expect(a.calls).toHaveLength(1);
  });

  it("does not fall back on a context-length error by default: INVALID_ARGUMENT CONTEXT_LENGTH_EXCEEDED", async () => {
    const { a, b } = start(withFallback());
    a.script(fail(upstreamError(failures.contextLength, { status: 400 })));
    b.otherwise(answer("never"));
    const error = await rig.complete().catch((err: unknown) => err);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect(reasonOf(error)).toBe("CONTEXT_LENGTH_EXCEEDED");
    expect(a.calls).toHaveLength(1);
    expect(b.calls).toHaveLength(0);
  });

  it("answers the configured degraded message, flagged, only when every candidate failed", async () => {
    const degraded = { message: "Busy; try again shortly." };
    const { a, b } = start(two({ retry: { maxAttempts: 1 }, degraded }));
    a.script(fail(serverError()), answer("a answers"));
    b.script(fail(serverError()));
    const context = callerContext();
    const response = await rig.complete("chat", context);
    expect(text(response)).toBe("Busy; try again shortly.");
    expect(response).toMatchObject({ provider: "sluice", model: "degraded" });
    expect(response.route).toMatchObject({
      provider: "sluice",
      upstreamModel: "degraded",
      degraded: true,
      attempts: 2,
      hedged: false,
    });
    expect(context.responseHeader.get("sluice-degraded")).toBe("true");
    // Not when a deployment answers.
    expect((await rig.complete()).route).toMatchObject({ provider: "a", degraded: false });
    expect(b.calls).toHaveLength(1);
  });

  it("never answers degraded for the caller's own bad request", async () => {
    const { a } = start(two({ degraded: { message: "Busy" } }));
    a.script(fail(upstreamError(failures.badRequest, { status: 400 })));
    await expect(rig.complete()).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
