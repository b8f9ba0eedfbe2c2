import { describe, expect, it } from "vitest";
import { Role, ToolChoiceMode } from "../../../../gen/sluice/v1/chat_pb.js";
import { isAnthropicParamError } from "./errors.js";
import { parseCountTokensRequest, parseMessagesRequest } from "./request.js";

const base = { model: "m", max_tokens: 10, messages: [{ role: "user", content: "hi" }] };
const refused = (body: unknown): string => {
  try {
    parseMessagesRequest(body);
  } catch (err) {
    expect(isAnthropicParamError(err)).toBe(true);
    return (err as Error & { param?: string }).param ?? "";
  }
  throw new Error("not refused");
};

describe("parseMessagesRequest", () => {
  it("system (string or blocks), sampling, stop sequences, metadata.user_id, stream", () => {
    const { request, stream } = parseMessagesRequest({
      ...base,
      system: [
        { type: "text", text: "a" },
        { type: "text", text: "b" },
      ],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 3,
      stop_sequences: ["X"],
      metadata: { user_id: "u1" },
      stream: true,
      thinking: { type: "disabled" },
    });
    expect(stream).toBe(true);
    expect(request.messages[0]!.role).toBe(Role.SYSTEM);
    expect(request.messages[0]!.content.map((p) => p.part.value)).toEqual(["a", "b"]);
    expect(request).toMatchObject({
      maxOutputTokens: 10,
      temperature: 0.5,
      topP: 0.9,
      topK: 3,
      stop: ["X"],
      metadata: { user_id: "u1" },
    });
    expect(parseMessagesRequest({ ...base, system: "s" }).request.messages[0]!.content[0]!.part.value).toBe("s");
  });

  it("images (base64, url), tool_use and tool_result blocks", () => {
    const { request } = parseMessagesRequest({
      ...base,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "see" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "AAEC" } },
            { type: "image", source: { type: "url", url: "https://x/y.png" } },
          ],
        },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "t", signature: "s" },
            { type: "tool_use", id: "t1", name: "f", input: { a: 1 } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "ok" }] },
            { type: "text", text: "next" },
          ],
        },
      ],
    });
    const [user, assistant, tool, after] = request.messages;
    expect(user!.content[1]!.part).toMatchObject({
      case: "image",
      value: { mediaType: "image/png", source: { case: "data", value: new Uint8Array([0, 1, 2]) } },
    });
    expect(user!.content[2]!.part).toMatchObject({ case: "image", value: { source: { case: "url", value: "https://x/y.png" } } });
    expect(assistant!.toolCalls[0]).toMatchObject({ id: "t1", name: "f", arguments: '{"a":1}' });
    expect(assistant!.content).toHaveLength(0);
    expect(tool).toMatchObject({ role: Role.TOOL, toolCallId: "t1" });
    expect(after).toMatchObject({ role: Role.USER });
  });

  it("tools and tool_choice (disable_parallel_tool_use → parallel_tool_calls false)", () => {
    const { request } = parseMessagesRequest({
      ...base,
      tools: [{ name: "f", description: "d", input_schema: { type: "object" } }],
      tool_choice: { type: "any", disable_parallel_tool_use: true },
    });
    expect(request.tools[0]).toMatchObject({ name: "f", description: "d", parameters: { type: "object" } });
    expect(request.toolChoice?.choice).toEqual({ case: "mode", value: ToolChoiceMode.REQUIRED });
    expect(request.parallelToolCalls).toBe(false);
    expect(parseMessagesRequest({ ...base, tool_choice: { type: "tool", name: "f" } }).request.toolChoice?.choice).toEqual({
      case: "toolName",
      value: "f",
    });
  });

  it("refuses by name what cannot be carried", () => {
    expect(refused({ ...base, max_tokens: undefined })).toBe("max_tokens");
    expect(refused({ ...base, thinking: { type: "enabled", budget_tokens: 1024 } })).toBe("thinking");
    expect(refused({ ...base, service_tier: "auto" })).toBe("service_tier");
    expect(
      refused({
        ...base,
        messages: [{ role: "user", content: [{ type: "text", text: "x", cache_control: { type: "ephemeral" } }] }],
      }),
    ).toBe("messages.0.content.0.cache_control");
    expect(refused({ ...base, messages: [{ role: "user", content: [{ type: "document", source: {} }] }] })).toBe(
      "messages.0.content.0.type",
    );
    expect(refused({ ...base, tools: [{ type: "web_search_20250305", name: "w" }] })).toBe("tools.0.type");
    expect(
      refused({ ...base, messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "x", is_error: true }] }] }),
    ).toBe("messages.0.content.0.is_error");
    expect(refused({ ...base, metadata: { user_id: "u", other: "x" } })).toBe("metadata.other");
    expect(refused({ ...base, temperature: "hot" })).toBe("temperature");
  });

  it("count_tokens needs no max_tokens and refuses sampling fields", () => {
    expect(parseCountTokensRequest({ model: "m", messages: [{ role: "user", content: "hi" }] }).messages).toHaveLength(1);
    expect(() => parseCountTokensRequest({ ...base })).toThrow(/max_tokens/);
  });
});
