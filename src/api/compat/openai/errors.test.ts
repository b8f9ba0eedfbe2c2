import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { gatewayError, invalidArgument } from "../../../errors/gateway-error.js";
import { reasons } from "../../../errors/reasons.js";
import { limitExceeded } from "../../../limits/quota-errors.js";
import { OpenAiParamError, sseErrorEvent, toOpenAiError } from "./errors.js";

const bodyOf = (answer: { body: string }) => JSON.parse(answer.body).error;

describe("toOpenAiError", () => {
  it("maps codes to statuses and types, the ErrorInfo reason to code", () => {
    const cases: [ConnectError, number, string, string | null][] = [
      [gatewayError(Code.NotFound, reasons.modelNotFound, "no"), 404, "not_found_error", "model_not_found"],
      [gatewayError(Code.Unauthenticated, reasons.unauthenticated, "no"), 401, "authentication_error", "unauthenticated"],
      [gatewayError(Code.PermissionDenied, reasons.modelNotAllowed, "no"), 403, "permission_error", "model_not_allowed"],
      [gatewayError(Code.Unavailable, reasons.upstreamOverloaded, "no"), 503, "overloaded_error", "upstream_overloaded"],
      [new ConnectError("internal error", Code.Internal), 500, "api_error", null],
    ];
    for (const [error, status, type, code] of cases) {
      const answer = toOpenAiError(error);
      expect(answer.status).toBe(status);
      expect(bodyOf(answer)).toEqual({ message: error.rawMessage, type, param: null, code });
    }
    expect(toOpenAiError(new ConnectError("x", Code.Internal)).headers["x-should-retry"]).toBe("false");
  });

  it("param from BadRequest (OpenAI's names), and from a refused field", () => {
    const bad = toOpenAiError(invalidArgument([{ field: "max_output_tokens", description: "too big" }]));
    expect(bad.status).toBe(400);
    expect(bodyOf(bad)).toMatchObject({ type: "invalid_request_error", param: "max_completion_tokens", code: "invalid_field" });
    const refused = toOpenAiError(
      new OpenAiParamError("logit_bias", "logit_bias is not supported by Sluice", "unsupported_parameter"),
    );
    expect(bodyOf(refused)).toEqual({
      message: "logit_bias is not supported by Sluice",
      type: "invalid_request_error",
      param: "logit_bias",
      code: "unsupported_parameter",
    });
  });

  it("a limit: 429 rate_limit_error with retry-after", () => {
    const answer = toOpenAiError(
      limitExceeded("requests_per_minute", 3, { path: "tenants.a.limits", subject: "tenant:a" } as never, 1_500),
    );
    expect(answer.status).toBe(429);
    expect(answer.headers["retry-after"]).toBe("2");
    expect(bodyOf(answer)).toMatchObject({ type: "rate_limit_error", code: "rate_limited" });
  });

  it("an SSE error event", () => {
    expect(sseErrorEvent(new ConnectError("cut", Code.Unavailable))).toMatch(/^data: \{"error":\{"message":"cut".*\}\n\n$/);
  });
});
