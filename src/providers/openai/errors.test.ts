import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { inBandError, isErrorPayload, readOpenAIError } from "./errors.js";
import { capturedErrorBodies } from "../../../test/fixtures/providers/openai/fixtures.js";

describe("readOpenAIError", () => {
  it("reads the recorded OpenAI bodies: code when set, lower-cased, else type", () => {
    expect(readOpenAIError(capturedErrorBodies.context_length_exceeded_400)).toEqual({
      code: "context_length_exceeded",
      message: expect.stringContaining("maximum context length is 4097 tokens"),
    });
    expect(readOpenAIError(capturedErrorBodies.rate_limit_exceeded_429).code).toBe("rate_limit_exceeded");
    expect(readOpenAIError({ error: { message: "m", type: "Server_Error", param: null, code: null } })).toEqual({
      code: "server_error",
      message: "m",
    });
  });

  it("reads the shapes of compatible servers and gives no facts for anything else", () => {
    // vLLM: top-level fields, numeric code (the HTTP status) — the type is the useful code.
    expect(readOpenAIError({ object: "error", message: "bad", type: "BadRequestError", param: null, code: 400 })).toEqual({
      code: "badrequesterror",
      message: "bad",
    });
    // Ollama: {"error": "text"}.
    expect(readOpenAIError({ error: "model 'x' not found" })).toEqual({ code: undefined, message: "model 'x' not found" });
    for (const body of [null, "text", 42, [], {}, { error: null }, { message: "no error key" }]) {
      expect(readOpenAIError(body)).toEqual({});
    }
  });
});

describe("isErrorPayload", () => {
  it("is true only for a non-null top-level error", () => {
    expect(isErrorPayload({ error: { message: "x" } })).toBe(true);
    expect(isErrorPayload({ error: "x" })).toBe(true);
    expect(isErrorPayload({ error: null, choices: [] })).toBe(false);
    expect(isErrorPayload({ choices: [] })).toBe(false);
    expect(isErrorPayload(null)).toBe(false);
  });
});

describe("inBandError", () => {
  const classify = (payload: unknown) => {
    const error = inBandError("oai", payload);
    return {
      code: error.code,
      reason: error.findDetails(ErrorInfoSchema)[0]?.reason,
      retryable: error.failure.retryable,
      message: error.rawMessage,
    };
  };

  it("classifies through the failure table from the error's type or code", () => {
    expect(classify({ error: { type: "server_error", message: "oops" } })).toMatchObject({
      code: Code.Unavailable,
      retryable: true,
    });
    expect(classify({ error: { type: "tokens", code: "rate_limit_exceeded" } })).toMatchObject({
      code: Code.ResourceExhausted,
      reason: "UPSTREAM_RATE_LIMITED",
    });
    expect(classify(capturedErrorBodies.context_length_exceeded_400)).toMatchObject({
      code: Code.InvalidArgument,
      reason: "CONTEXT_LENGTH_EXCEEDED",
      retryable: false,
    });
    expect(classify({ error: { type: "invalid_request_error", message: "bad" } })).toMatchObject({
      code: Code.InvalidArgument,
      reason: "UPSTREAM_BAD_REQUEST",
    });
    expect(classify({ error: { type: "overloaded_error" } })).toMatchObject({
      code: Code.Unavailable,
      reason: "UPSTREAM_OVERLOADED",
    });
    expect(classify({ object: "error", type: "NotFoundError", code: 404, message: "no model" })).toMatchObject({
      code: Code.NotFound,
    });
    expect(classify({ error: { message: "no type at all" } })).toMatchObject({
      code: Code.Unavailable,
      reason: "UPSTREAM_UNAVAILABLE",
    });
  });

  it("withholds an auth error's text (it can echo the key) and redacts keys elsewhere", () => {
    const auth = classify(capturedErrorBodies.invalid_api_key_401);
    expect(auth).toMatchObject({ code: Code.Internal, reason: "UPSTREAM_AUTH" });
    expect(auth.message).not.toContain("sk-");
    expect(auth.message).not.toContain("Incorrect API key");
    const leaky = classify({ error: { type: "server_error", message: "failed for key sk-abcdefghijklmnop" } });
    expect(leaky.message).toContain("[redacted]");
    expect(leaky.message).not.toContain("sk-abcdefghijklmnop");
  });
});
