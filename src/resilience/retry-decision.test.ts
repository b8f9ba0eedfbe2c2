import { describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { UpstreamError, gatewayError, invalidArgument } from "../errors/gateway-error.js";
import { classifyHttpFailure, failures, type FailureClass } from "../errors/failure-table.js";
import { abortError } from "../errors/abort-error.js";
import { decideRetry, type RetryState } from "./retry-decision.js";

const backoff = { initialMs: 100, maxMs: 1_000 };
const state: RetryState = { attempt: 1, maxAttempts: 3, elapsedMs: 0, totalBudgetMs: 60_000, maxRetryAfterMs: 30_000 };
const half = () => 0.5;

function upstream(failure: FailureClass, retryAfterMs?: number): UpstreamError {
  return new UpstreamError({ failure, provider: "openai", message: `provider openai: ${failure.reason}`, retryAfterMs });
}

describe("decideRetry: what is retried on the same deployment", () => {
  it.each([
    ["rateLimited", failures.rateLimited],
    ["overloaded", failures.overloaded],
    ["serverError", failures.serverError],
    ["timeout", failures.timeout],
    ["connection", failures.connection],
    ["streamCut", failures.streamCut],
    ["conflict", failures.conflict],
  ])("retries %s after a jittered backoff", (_, failure) => {
    expect(decideRetry(upstream(failure), state, backoff, half)).toEqual({ kind: "retry", delayMs: 50, reason: "backoff" });
  });

  it("grows the backoff with the attempt number (attempt n → retry n)", () => {
    expect(decideRetry(upstream(failures.serverError), { ...state, attempt: 2, maxAttempts: 10 }, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 100,
      reason: "backoff",
    });
    expect(decideRetry(upstream(failures.serverError), { ...state, attempt: 8, maxAttempts: 10 }, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 500,
      reason: "backoff",
    });
  });

  it("retries a status the table calls final when the provider sent x-should-retry: true", () => {
    const failure = classifyHttpFailure({ status: 400, shouldRetry: true });
    expect(decideRetry(upstream(failure), state, backoff, half)).toEqual({ kind: "retry", delayMs: 50, reason: "backoff" });
  });

  it("does not retry a 503 the provider marked x-should-retry: false, but fails over", () => {
    const failure = classifyHttpFailure({ status: 503, shouldRetry: false });
    expect(decideRetry(upstream(failure), state, backoff, half)).toEqual({ kind: "failover", reason: "not-retryable" });
  });
});

describe("decideRetry: Retry-After", () => {
  it("waits exactly the provider's delay, not the (shorter) backoff, and draws no random number", () => {
    const random = vi.fn(() => 0);
    expect(decideRetry(upstream(failures.rateLimited, 1_500), state, backoff, random)).toEqual({
      kind: "retry",
      delayMs: 1_500,
      reason: "retry-after",
    });
    expect(random).not.toHaveBeenCalled();
  });

  it("waits exactly the provider's delay even when the backoff would be longer", () => {
    expect(decideRetry(upstream(failures.overloaded, 10), { ...state, attempt: 2 }, backoff, () => 1)).toEqual({
      kind: "retry",
      delayMs: 10,
      reason: "retry-after",
    });
  });

  it("honours retry-after 0 as 'now'", () => {
    expect(decideRetry(upstream(failures.rateLimited, 0), state, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 0,
      reason: "retry-after",
    });
  });

  it("waits a delay equal to maxRetryAfterMs, fails over for one a millisecond longer", () => {
    const limits = { ...state, maxRetryAfterMs: 5_000 };
    expect(decideRetry(upstream(failures.rateLimited, 5_000), limits, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 5_000,
      reason: "retry-after",
    });
    expect(decideRetry(upstream(failures.rateLimited, 5_001), limits, backoff, half)).toEqual({
      kind: "failover",
      reason: "retry-after-too-long",
    });
  });

  it("fails over rather than wait past the total budget (elapsed + delay > totalBudgetMs)", () => {
    const late = { ...state, elapsedMs: 58_000, totalBudgetMs: 60_000 };
    expect(decideRetry(upstream(failures.rateLimited, 2_000), late, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 2_000,
      reason: "retry-after",
    });
    expect(decideRetry(upstream(failures.rateLimited, 2_001), late, backoff, half)).toEqual({
      kind: "failover",
      reason: "over-time-budget",
    });
  });

  it("ignores retry-after on a non-retryable failure", () => {
    expect(decideRetry(upstream(failures.upstreamAuth, 100), state, backoff, half)).toEqual({
      kind: "failover",
      reason: "not-retryable",
    });
  });
});

describe("decideRetry: backoff and the total budget", () => {
  it("fails over rather than back off past the total budget", () => {
    const late = { ...state, elapsedMs: 59_950, totalBudgetMs: 60_000 };
    expect(decideRetry(upstream(failures.serverError), late, backoff, half)).toEqual({
      kind: "retry",
      delayMs: 50,
      reason: "backoff",
    });
    expect(decideRetry(upstream(failures.serverError), late, backoff, () => 0.51)).toEqual({
      kind: "failover",
      reason: "over-time-budget",
    });
  });
});

describe("decideRetry: attempts exhausted", () => {
  it("fails over once maxAttempts attempts were made on this deployment", () => {
    expect(decideRetry(upstream(failures.serverError), { ...state, attempt: 2, maxAttempts: 3 }, backoff, half).kind).toBe(
      "retry",
    );
    expect(decideRetry(upstream(failures.serverError), { ...state, attempt: 3, maxAttempts: 3 }, backoff, half)).toEqual({
      kind: "failover",
      reason: "attempts-exhausted",
    });
  });

  it("maxAttempts 1 means no retry at all, even with a short retry-after", () => {
    expect(decideRetry(upstream(failures.rateLimited, 1), { ...state, attempt: 1, maxAttempts: 1 }, backoff, half)).toEqual({
      kind: "failover",
      reason: "attempts-exhausted",
    });
  });

  it("fails the call when the failure is retryable but another deployment would not help", () => {
    const sameOnly: FailureClass = { ...failures.serverError, failover: false };
    expect(decideRetry(upstream(sameOnly), { ...state, attempt: 3, maxAttempts: 3 }, backoff, half)).toEqual({
      kind: "fail",
      reason: "attempts-exhausted",
    });
    expect(decideRetry(upstream(sameOnly, 60_000), state, backoff, half)).toEqual({
      kind: "fail",
      reason: "retry-after-too-long",
    });
  });
});

describe("decideRetry: no retry on the same deployment", () => {
  it.each([
    ["401/403 upstreamAuth", failures.upstreamAuth],
    ["402 upstreamBilling", failures.upstreamBilling],
    ["404 modelNotFound", failures.modelNotFound],
    ["malformed", failures.malformed],
    ["unexpected", failures.unexpected],
  ])("fails over on %s", (_, failure) => {
    expect(decideRetry(upstream(failure), state, backoff, half)).toEqual({ kind: "failover", reason: "not-retryable" });
  });

  it.each([
    ["400 badRequest", failures.badRequest],
    ["413 contextLength", failures.contextLength],
    ["400 context_length_exceeded", classifyHttpFailure({ status: 400, providerCode: "context_length_exceeded" })],
  ])("fails on the caller's %s", (_, failure) => {
    expect(decideRetry(upstream(failure), state, backoff, half)).toEqual({ kind: "fail", reason: "not-retryable" });
  });
});

describe("decideRetry: anything that is not an UpstreamError fails, never retried", () => {
  const cancelled = new AbortController();
  cancelled.abort();
  const deadline = new AbortController();
  deadline.abort(new ConnectError("deadline exceeded", Code.DeadlineExceeded));

  it.each([
    ["the caller's CANCELLED", abortError(cancelled.signal)],
    ["the caller's DEADLINE_EXCEEDED", abortError(deadline.signal)],
    ["INVALID_ARGUMENT", invalidArgument([{ field: "messages", description: "must not be empty" }])],
    [
      "a ConnectError UNAVAILABLE (gateway's own)",
      gatewayError(Code.Unavailable, "ALL_DEPLOYMENTS_UNAVAILABLE", "all breakers open"),
    ],
    ["a plain Error", new Error("bug")],
    ["a thrown string", "boom"],
    ["undefined", undefined],
  ])("%s", (_, error) => {
    const random = vi.fn(() => 0.5);
    expect(decideRetry(error, state, backoff, random)).toEqual({ kind: "fail", reason: "not-upstream" });
    expect(random).not.toHaveBeenCalled();
  });
});

describe("decideRetry: a prompt too long for this model", () => {
  it("fails the call unless the alias opts in to falling back on context length", () => {
    const tooLong = upstream(failures.contextLength);
    expect(decideRetry(tooLong, state, backoff)).toEqual({ kind: "fail", reason: "not-retryable" });
    expect(decideRetry(tooLong, { ...state, fallbackOnContextLength: true }, backoff)).toEqual({
      kind: "failover",
      reason: "not-retryable",
    });
  });

  it("never fails over any other bad request on that opt-in", () => {
    expect(decideRetry(upstream(failures.badRequest), { ...state, fallbackOnContextLength: true }, backoff)).toEqual({
      kind: "fail",
      reason: "not-retryable",
    });
  });
});
