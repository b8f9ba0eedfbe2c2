import { describe, expect, it } from "vitest";
import { ImageDetail, Role, ToolChoiceMode } from "../../../../gen/sluice/v1/chat_pb.js";
import { isParamError } from "./errors.js";
import { parseChatRequest } from "./request.js";

const user = { role: "user", content: "hi" };
const paramOf = (body: unknown): string | undefined => {
  try {
    parseChatRequest(body);
  } catch (err) {
    if (isParamError(err)) return err.param;
    throw err;
  }
  return "accepted";
};

describe("parseChatRequest", () => {
  it("translates messages of every role, parts, tool calls and tool results", () => {
    const { request } = parseChatRequest({
      model: "m",
      messages: [
        { role: "system", content: "s" },
        { role: "developer", content: [{ type: "text", text: "d" }] },
        {
          role: "user",
          name: "ann",
          content: [
            { type: "text", text: "look" },
            { type: "image_url", image_url: { url: "https://x/i.png", detail: "low" } },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "c1", content: "r" },
      ],
    });
    const [system, developer, u, assistant, tool] = request.messages;
    expect(system!.role).toBe(Role.SYSTEM);
    expect(developer!.role).toBe(Role.SYSTEM);
    expect(u!.name).toBe("ann");
    expect(u!.content[1]!.part).toMatchObject({
      case: "image",
      value: { source: { case: "url", value: "https://x/i.png" }, detail: ImageDetail.LOW },
    });
    expect(assistant!.content).toEqual([]);
    expect(assistant!.toolCalls[0]).toMatchObject({ id: "c1", name: "f", arguments: "{}" });
    expect(tool).toMatchObject({ role: Role.TOOL, toolCallId: "c1" });
  });

  it("translates settings, tools, tool_choice, response_format, user and metadata", () => {
    const schema = { type: "object", properties: {} };
    const { request, stream, includeUsage } = parseChatRequest({
      model: "m",
      messages: [user],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 10,
      stop: "x",
      seed: 3,
      presence_penalty: 0.1,
      frequency_penalty: 0.2,
      tools: [{ type: "function", function: { name: "f", parameters: schema, strict: true } }],
      tool_choice: "required",
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "n", schema } },
      user: "u1",
      metadata: { team: "a" },
      n: 1,
    });
    expect(stream).toBe(true);
    expect(includeUsage).toBe(true);
    expect(request).toMatchObject({
      temperature: 0.5,
      topP: 0.9,
      maxOutputTokens: 10,
      stop: ["x"],
      seed: 3n,
      presencePenalty: 0.1,
      frequencyPenalty: 0.2,
      parallelToolCalls: false,
    });
    expect(request.tools[0]).toMatchObject({ name: "f", parameters: schema, strict: true });
    expect(request.toolChoice?.choice).toEqual({ case: "mode", value: ToolChoiceMode.REQUIRED });
    expect(request.responseFormat?.format.case).toBe("jsonSchema");
    expect(request.metadata).toEqual({ team: "a", user: "u1" });
  });

  it("refuses unsupported and unknown fields by name", () => {
    const base = { model: "m", messages: [user] };
    expect(paramOf({ ...base, n: 2 })).toBe("n");
    expect(paramOf({ ...base, logprobs: true })).toBe("logprobs");
    expect(paramOf({ ...base, logit_bias: {} })).toBe("logit_bias");
    expect(paramOf({ ...base, audio: {} })).toBe("audio");
    expect(paramOf({ ...base, functions: [] })).toBe("functions");
    expect(paramOf({ ...base, stream: true, stream_options: { include_obfuscation: false } })).toBe(
      "stream_options.include_obfuscation",
    );
    expect(paramOf({ ...base, messages: [{ role: "function", name: "f", content: "x" }] })).toBe("messages[0].role");
    expect(paramOf({ ...base, messages: [{ role: "user", content: [{ type: "input_audio" }] }] })).toBe(
      "messages[0].content[0].type",
    );
    expect(paramOf({ ...base, messages: [{ role: "system", content: [{ type: "image_url", image_url: { url: "u" } }] }] })).toBe(
      "messages[0].content[0].type",
    );
    expect(paramOf({ ...base, tools: [{ type: "custom", custom: {} }] })).toBe("tools[0].type");
    expect(paramOf({ ...base, messages: [{ role: "constructor", content: "x" }] })).toBe("messages[0].role");
    expect(paramOf({ ...base, temperature: "hot" })).toBe("temperature");
    expect(paramOf({ ...base, max_tokens: 5, max_completion_tokens: 6 })).toBe("max_tokens");
    expect(paramOf({ model: "m" })).toBe("messages");
    expect(paramOf({ ...base, n: null, logprobs: false })).toBe("accepted");
  });
});
