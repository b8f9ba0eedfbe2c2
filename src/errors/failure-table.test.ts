import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { classifyHttpFailure, classifyNetworkError, describeUpstreamFailure, failures } from "./failure-table.js";
import { parseRetryAfterMs, parseShouldRetry } from "./retry-after.js";

describe("failure table", () => {
  it.each([
    [400, undefined, Code.InvalidArgument, "UPSTREAM_BAD_REQUEST", false],
    [422, undefined, Code.InvalidArgument, "UPSTREAM_BAD_REQUEST", false],
    [413, undefined, Code.InvalidArgument, "CONTEXT_LENGTH_EXCEEDED", false],
    [400, "context_length_exceeded", Code.InvalidArgument, "CONTEXT_LENGTH_EXCEEDED", false],
    [401, undefined, Code.Internal, "UPSTREAM_AUTH", false],
    [403, undefined, Code.Internal, "UPSTREAM_AUTH", false],
    [404, undefined, Code.NotFound, "UPSTREAM_MODEL_NOT_FOUND", false],
    [408, undefined, Code.Unavailable, "UPSTREAM_TIMEOUT", true],
    [429, undefined, Code.ResourceExhausted, "UPSTREAM_RATE_LIMITED", true],
    [500, undefined, Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    [502, undefined, Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    [503, undefined, Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    [504, undefined, Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    [529, undefined, Code.Unavailable, "UPSTREAM_OVERLOADED", true],
  ])("status %i (%s) → %s %s, retryable %s", (status, providerCode, code, reason, retryable) => {
    const failure = classifyHttpFailure({ status, providerCode });
    expect(failure.code).toBe(code);
    expect(failure.reason).toBe(reason);
    expect(failure.retryable).toBe(retryable);
  });

  it("recognises Anthropic's context-length message on a plain 400", () => {
    const failure = classifyHttpFailure({
      status: 400,
      providerCode: "invalid_request_error",
      providerMessage: "prompt is too long: 215000 tokens > 200000 maximum",
    });
    expect(failure).toBe(failures.contextLength);
  });

  it("lets x-should-retry override the status rule either way", () => {
    expect(classifyHttpFailure({ status: 400, shouldRetry: true }).retryable).toBe(true);
    expect(classifyHttpFailure({ status: 503, shouldRetry: false }).retryable).toBe(false);
    expect(classifyHttpFailure({ status: 529, shouldRetry: true })).toBe(failures.overloaded);
  });

  it("never counts a caller's bad request against the deployment", () => {
    expect(classifyHttpFailure({ status: 400 }).deploymentFault).toBe(false);
    expect(classifyHttpFailure({ status: 429 }).deploymentFault).toBe(false);
    expect(classifyHttpFailure({ status: 500 }).deploymentFault).toBe(true);
  });

  it("classifies socket errors, looking through undici's cause chain", () => {
    expect(classifyNetworkError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe(failures.connection);
    expect(classifyNetworkError(new Error("wrapped", { cause: { code: "UND_ERR_HEADERS_TIMEOUT" } }))).toBe(failures.timeout);
    expect(classifyNetworkError(new Error("no code")).code).toBe(Code.Unavailable);
  });
});

describe("Retry-After", () => {
  const headers = (h: Record<string, string>) => (name: string) => h[name];

  it("prefers retry-after-ms, then seconds, then an HTTP date", () => {
    expect(parseRetryAfterMs(headers({ "retry-after-ms": "1500.5", "retry-after": "9" }))).toBe(1501);
    expect(parseRetryAfterMs(headers({ "retry-after": "2" }))).toBe(2000);
    const now = Date.parse("2026-11-22T10:00:00Z");
    expect(parseRetryAfterMs(headers({ "retry-after": "Sun, 22 Nov 2026 10:00:07 GMT" }), now)).toBe(7000);
    expect(parseRetryAfterMs(headers({ "retry-after": "Sun, 22 Nov 2026 09:59:00 GMT" }), now)).toBe(0);
  });

  it("ignores absent, negative and garbage values", () => {
    expect(parseRetryAfterMs(headers({}))).toBeUndefined();
    expect(parseRetryAfterMs(headers({ "retry-after-ms": "-5" }))).toBeUndefined();
    expect(parseRetryAfterMs(headers({ "retry-after": "soon" }))).toBeUndefined();
  });

  it("reads x-should-retry only when it is exactly true or false", () => {
    expect(parseShouldRetry(headers({ "x-should-retry": "true" }))).toBe(true);
    expect(parseShouldRetry(headers({ "x-should-retry": "false" }))).toBe(false);
    expect(parseShouldRetry(headers({ "x-should-retry": "maybe" }))).toBeUndefined();
  });
});

describe("UpstreamError", () => {
  it("is a ConnectError to connect (so callers see its code and details), and only UpstreamErrors are UpstreamErrors", async () => {
    const { UpstreamError } = await import("./gateway-error.js");
    const { ConnectError } = await import("@connectrpc/connect");
    const err = new UpstreamError({ failure: failures.overloaded, provider: "p", message: "m", retryAfterMs: 1500 });
    expect(err instanceof ConnectError).toBe(true);
    expect(err instanceof UpstreamError).toBe(true);
    expect(ConnectError.from(err)).toBe(err);
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    expect(new ConnectError("x", Code.Internal) instanceof UpstreamError).toBe(false);
  });
});

describe("failure classes decide what the caller reads and what fails over", () => {
  it("withholds the provider's message on auth and billing failures, with words of its own", () => {
    const authFailure = classifyHttpFailure({ status: 401 });
    expect(authFailure.showProviderMessage).toBe(false);
    expect(classifyHttpFailure({ status: 403 }).showProviderMessage).toBe(false);
    expect(classifyHttpFailure({ status: 402 }).showProviderMessage).toBe(false);
    const secret = "Incorrect API key provided: sk-abc123456789";
    expect(describeUpstreamFailure("provider p answered 401", authFailure, "p", secret)).toBe(
      "provider p answered 401: the gateway's credentials for p were refused",
    );
  });

  it("passes other providers' messages on, redacted and bounded", () => {
    const message = describeUpstreamFailure(
      "provider p answered 400",
      failures.badRequest,
      "p",
      `bad key sk-abcdef123456 ${"x".repeat(900)}`,
    );
    expect(message.startsWith("provider p answered 400: bad key [redacted] x")).toBe(true);
    expect(message).not.toContain("sk-abcdef");
    expect(message.length).toBeLessThanOrEqual("provider p answered 400: ".length + 500);
    expect(describeUpstreamFailure("provider p answered 500", failures.serverError, "p", undefined)).toBe(
      "provider p answered 500",
    );
  });

  it("marks only the context-length class as failing over on the alias's opt-in", () => {
    const optIn = Object.entries(failures)
      .filter(([, failure]) => failure.contextLength)
      .map(([name]) => name);
    expect(optIn).toEqual(["contextLength"]);
    expect(failures.contextLength.failover).toBe(false);
  });
});
