import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FinishReason, Role } from "../../../../gen/sluice/v1/chat_pb.js";
import { CompleteResponseSchema } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { ListModelsResponseSchema } from "../../../../gen/sluice/v1/model_service_pb.js";
import { completionJson, modelListJson } from "./response.js";

describe("completionJson", () => {
  it("writes a chat.completion with tool calls, reasoning and usage", () => {
    const response = create(CompleteResponseSchema, {
      id: "c1",
      model: "claude-x",
      message: {
        role: Role.ASSISTANT,
        content: [{ part: { case: "text", value: "ok" } }],
        toolCalls: [{ id: "t", name: "f", arguments: "{}" }],
        reasoning: "because",
      },
      finishReason: FinishReason.TOOL_CALLS,
      usage: { inputTokens: 2, outputTokens: 3, reasoningTokens: 1 },
    });
    expect(JSON.parse(completionJson(response, 42))).toEqual({
      id: "c1",
      object: "chat.completion",
      created: 42,
      model: "claude-x",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: "ok",
            refusal: null,
            tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }],
            reasoning_content: "because",
          },
          logprobs: null,
          finish_reason: "tool_calls",
        },
      ],
      usage: {
        prompt_tokens: 2,
        completion_tokens: 3,
        total_tokens: 5,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 1 },
      },
    });
  });

  it("content null without text; refusal and pause as stop and length", () => {
    const bare = create(CompleteResponseSchema, {
      id: "c",
      model: "m",
      message: { role: Role.ASSISTANT },
      finishReason: FinishReason.REFUSAL,
    });
    const json = JSON.parse(completionJson(bare, 1));
    expect(json.choices[0].message.content).toBeNull();
    expect(json.choices[0].finish_reason).toBe("stop");
    const paused = create(CompleteResponseSchema, { finishReason: FinishReason.PAUSE });
    expect(JSON.parse(completionJson(paused, 1)).choices[0].finish_reason).toBe("length");
  });
});

describe("modelListJson", () => {
  it("lists aliases in OpenAI's shape", () => {
    const list = create(ListModelsResponseSchema, { models: [{ alias: "fast", provider: "openai" }] });
    expect(JSON.parse(modelListJson(list))).toEqual({
      object: "list",
      data: [{ id: "fast", object: "model", created: 0, owned_by: "openai" }],
    });
  });
});
