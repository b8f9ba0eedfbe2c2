import { describe, expect, it } from "vitest";
import { Code, type ConnectError } from "@connectrpc/connect";
import { FinishReason, Role } from "../../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { failures } from "../../errors/failure-table.js";
import { translateCompletion, type AnswerFailures } from "./response.js";

const answerFailures: AnswerFailures = {
  provider: "oai",
  malformed: (what) => new UpstreamError({ failure: failures.malformed, provider: "oai", message: `malformed: ${what}` }),
  streamCut: (what) => new UpstreamError({ failure: failures.streamCut, provider: "oai", message: `cut: ${what}` }),
};
const call = { model: "deployment-model" };

function completion(message: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown {
  return {
    id: "chatcmpl-9",
    object: "chat.completion",
    model: "gpt-4o-2024-08-06",
    choices: [{ index: 0, message: { role: "assistant", ...message }, logprobs: null, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    ...extra,
  };
}

function texts(body: unknown): string[] {
  const response = translateCompletion(body, call, answerFailures);
  return response.message!.content.map((p) => (p.part.case === "text" ? p.part.value : `<${p.part.case}>`));
}

function thrown(body: unknown): ConnectError {
  try {
    translateCompletion(body, call, answerFailures);
  } catch (err) {
    return err as ConnectError;
  }
  throw new Error("expected an error");
}

describe("translateCompletion", () => {
  it("maps id, model, provider, the assistant message and usage details", () => {
    const response = translateCompletion(
      completion(
        { content: "Hi", refusal: null, annotations: [] },
        {
          usage: {
            prompt_tokens: 19,
            completion_tokens: 10,
            total_tokens: 29,
            prompt_tokens_details: { cached_tokens: 6, audio_tokens: 0 },
            completion_tokens_details: { reasoning_tokens: 3, audio_tokens: 0 },
          },
          service_tier: "default",
        },
      ),
      call,
      answerFailures,
    );
    expect(response.id).toBe("chatcmpl-9");
    expect(response.model).toBe("gpt-4o-2024-08-06");
    expect(response.provider).toBe("oai");
    expect(response.message!.role).toBe(Role.ASSISTANT);
    expect(texts(completion({ content: "Hi" }))).toEqual(["Hi"]);
    expect(response.finishReason).toBe(FinishReason.STOP);
    expect(response.usage).toMatchObject({
      inputTokens: 19,
      outputTokens: 10,
      cachedInputTokens: 6,
      reasoningTokens: 3,
      cacheWriteInputTokens: 0,
    });
  });

  it("keeps a refusal as the message text and reports FINISH_REASON_REFUSAL", () => {
    const body = completion({ content: null, refusal: "I can't help with that." });
    expect(texts(body)).toEqual(["I can't help with that."]);
    expect(translateCompletion(body, call, answerFailures).finishReason).toBe(FinishReason.REFUSAL);
  });

  it("reads reasoning_content (or reasoning) from compatible servers", () => {
    const withReasoning = translateCompletion(completion({ content: "4", reasoning_content: "2+2" }), call, answerFailures);
    expect(withReasoning.message!.reasoning).toBe("2+2");
    expect(translateCompletion(completion({ content: "4", reasoning: "r" }), call, answerFailures).message!.reasoning).toBe("r");
  });

  it("reads content given as an array of text parts", () => {
    expect(
      texts(
        completion({
          content: [
            { type: "text", text: "a" },
            { type: "thinking", thinking: [] },
            { type: "text", text: "b" },
          ],
        }),
      ),
    ).toEqual(["ab"]);
  });

  it("maps function tool calls and skips other kinds", () => {
    const response = translateCompletion(
      completion({
        content: null,
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } },
          { id: "call_2", type: "custom", custom: { name: "g", input: "x" } },
        ],
      }),
      call,
      answerFailures,
    );
    expect(response.message!.toolCalls.map(({ id, name, arguments: args }) => ({ id, name, args }))).toEqual([
      { id: "call_1", name: "f", args: '{"a":1}' },
    ]);
    expect(response.message!.content).toEqual([]);
  });

  it("falls back to the deployment model and a generated id, and zero usage", () => {
    const response = translateCompletion(
      { choices: [{ message: { content: "x" }, finish_reason: "weird" }] },
      call,
      answerFailures,
    );
    expect(response.model).toBe("deployment-model");
    expect(response.id).toMatch(/^chatcmpl-sluice-/);
    expect(response.finishReason).toBe(FinishReason.OTHER);
    expect(response.usage).toMatchObject({ inputTokens: 0, outputTokens: 0 });
  });

  it("reads choice index 0 even when it is not listed first", () => {
    const body = completion({});
    (body as { choices: unknown[] }).choices = [
      { index: 1, message: { content: "one" }, finish_reason: "stop" },
      { index: 0, message: { content: "zero" }, finish_reason: "length" },
    ];
    expect(texts(body)).toEqual(["zero"]);
    expect(translateCompletion(body, call, answerFailures).finishReason).toBe(FinishReason.LENGTH);
  });

  it("rejects a body without a readable choice as UPSTREAM_MALFORMED", () => {
    for (const body of [
      null,
      [],
      "x",
      {},
      { choices: [] },
      { choices: [{ index: 0 }] },
      { choices: [{ index: 0, message: null }] },
    ]) {
      const error = thrown(body);
      expect(error.code, JSON.stringify(body)).toBe(Code.Internal);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UPSTREAM_MALFORMED");
    }
  });

  it("classifies an error object answered with 200", () => {
    const error = thrown({ error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } });
    expect(error.code).toBe(Code.ResourceExhausted);
  });
});
