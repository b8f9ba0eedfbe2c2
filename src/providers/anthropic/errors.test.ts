import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { readAnthropicError, streamErrorEvent } from "./errors.js";
import { readFixture, recordedErrors } from "../../../test/fixtures/providers/anthropic/fixtures.js";

describe("readAnthropicError", () => {
  it("reads error.type and error.message of the recorded bodies", () => {
    const recorded = recordedErrors();
    expect(readAnthropicError(recorded.s3_overloaded_529.body)).toEqual({ code: "overloaded_error", message: "Overloaded" });
    expect(readAnthropicError(recorded.s3_overloaded_529_with_request_id.body)).toEqual({
      code: "overloaded_error",
      message: "Overloaded",
    });
    expect(readAnthropicError(recorded.s1_not_found_404.body)).toEqual({
      code: "not_found_error",
      message: "The requested resource could not be found.",
    });
    const rateLimit = readAnthropicError(recorded.s4_rate_limit_429.body);
    expect(rateLimit.code).toBe("rate_limit_error");
    expect(rateLimit.message).toMatch(/^This request would exceed the rate limit/);
  });

  it("lower-cases the type and yields nothing for other shapes", () => {
    expect(readAnthropicError({ error: { type: "Overloaded_Error" } })).toEqual({ code: "overloaded_error", message: undefined });
    expect(readAnthropicError({ error: "overloaded" })).toEqual({});
    expect(readAnthropicError({ message: "Bad Gateway" })).toEqual({});
    expect(readAnthropicError(["error"])).toEqual({});
    expect(readAnthropicError(null)).toEqual({});
  });
});

describe("streamErrorEvent", () => {
  it("classifies the documented overloaded error event like a 529", () => {
    const data = readFixture("sse/docs/docs_error_event_overloaded.sse").split("\n")[1]!.slice("data: ".length);
    const error = streamErrorEvent("claude", JSON.parse(data));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.failure.reason).toBe("UPSTREAM_OVERLOADED");
    expect(error.failure.retryable).toBe(true);
    expect(error.provider).toBe("claude");
    expect(error.rawMessage).toBe("provider claude stream failed with overloaded_error: Overloaded");
  });

  it("recognises a context-length error inside a stream", () => {
    const error = streamErrorEvent("claude", {
      type: "error",
      error: { type: "invalid_request_error", message: "prompt is too long: 210000 tokens > 200000 maximum" },
    });
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.failure.reason).toBe("CONTEXT_LENGTH_EXCEEDED");
  });

  it("never shows a billing or permission message, and redacts keys elsewhere", () => {
    const billing = streamErrorEvent("claude", { error: { type: "billing_error", message: "card 4242 declined for org X" } });
    expect(billing.failure.reason).toBe("UPSTREAM_BILLING");
    expect(billing.message).not.toContain("4242");
    const permission = streamErrorEvent("claude", { error: { type: "permission_error", message: "org X may not" } });
    expect(permission.failure.reason).toBe("UPSTREAM_AUTH");
    expect(permission.message).not.toContain("org X");
    const leaky = streamErrorEvent("claude", { error: { type: "api_error", message: "failed for sk-ant-api03-secretsecret" } });
    expect(leaky.message).not.toContain("secretsecret");
  });
});
