import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { FinishReason } from "../../../../gen/sluice/v1/chat_pb.js";
import { doneEvent, reasoningEvent, startEvent, textEvent, toolCallEvent } from "../../../providers/stream-events.js";
import { toAnthropicError, sseErrorEvent } from "./errors.js";
import { MessageStreamEncoder, StreamShapeError } from "./stream.js";
import { messageJson } from "./response.js";
import { create } from "@bufbuild/protobuf";
import { CompleteResponseSchema } from "../../../../gen/sluice/v1/chat_service_pb.js";

const usage = {
  $typeName: "sluice.v1.Usage",
  inputTokens: 10,
  outputTokens: 5,
  cachedInputTokens: 4,
  reasoningTokens: 0,
  cacheWriteInputTokens: 1,
} as const;

function events(text: string): Array<[string, Record<string, unknown>]> {
  return text
    .split("\n\n")
    .filter((f) => f !== "")
    .map((f) => {
      const [event, data] = f.split("\n");
      return [event!.slice(7), JSON.parse(data!.slice(6))];
    });
}

describe("MessageStreamEncoder", () => {
  it("thinking, text and tool_use blocks each open, delta and close in order", () => {
    const encoder = new MessageStreamEncoder();
    const out = [
      startEvent("msg_1", "m", "p"),
      reasoningEvent("hmm"),
      textEvent("Hi"),
      textEvent("!"),
      toolCallEvent(0, "t1", "f", ""),
      toolCallEvent(0, "", "", '{"a":'),
      toolCallEvent(0, "", "", "1}"),
      doneEvent(FinishReason.TOOL_CALLS, usage),
    ]
      .map((e) => encoder.encode(e))
      .join("");
    const seq = events(out);
    expect(seq.map(([name, data]) => `${name}${"index" in data ? `:${data.index}` : ""}`)).toEqual([
      "message_start",
      "content_block_start:0",
      "content_block_delta:0",
      "content_block_stop:0",
      "content_block_start:1",
      "content_block_delta:1",
      "content_block_delta:1",
      "content_block_stop:1",
      "content_block_start:2",
      "content_block_delta:2",
      "content_block_delta:2",
      "content_block_stop:2",
      "message_delta",
      "message_stop",
    ]);
    expect(seq[2]![1]).toMatchObject({ delta: { type: "thinking_delta", thinking: "hmm" } });
    expect(seq[5]![1]).toMatchObject({ delta: { type: "text_delta", text: "Hi" } });
    expect(seq[8]![1]).toMatchObject({ content_block: { type: "tool_use", id: "t1", name: "f", input: {} } });
    expect(seq[9]![1]).toMatchObject({ delta: { type: "input_json_delta", partial_json: '{"a":' } });
    expect(seq[12]![1]).toEqual({
      type: "message_delta",
      delta: { stop_reason: "tool_use", stop_sequence: null },
      usage: { input_tokens: 5, output_tokens: 5, cache_read_input_tokens: 4, cache_creation_input_tokens: 1 },
    });
  });

  it("a fragment for a closed tool block cannot be expressed", () => {
    const encoder = new MessageStreamEncoder();
    encoder.encode(startEvent("m", "m", "p"));
    encoder.encode(toolCallEvent(0, "a", "f", ""));
    encoder.encode(toolCallEvent(1, "b", "g", ""));
    expect(() => encoder.encode(toolCallEvent(0, "", "", "{}"))).toThrow(StreamShapeError);
  });
});

describe("messageJson and errors", () => {
  it("a unary message: thinking, text, tool_use; stop reason; usage without the cached parts", () => {
    const response = create(CompleteResponseSchema, {
      id: "msg",
      model: "m",
      message: {
        reasoning: "r",
        content: [{ part: { case: "text", value: "t" } }],
        toolCalls: [{ id: "c", name: "f", arguments: '{"x":1}' }],
      },
      finishReason: FinishReason.LENGTH,
      usage,
    });
    expect(JSON.parse(messageJson(response))).toEqual({
      id: "msg",
      type: "message",
      role: "assistant",
      model: "m",
      content: [
        { type: "thinking", thinking: "r", signature: "" },
        { type: "text", text: "t" },
        { type: "tool_use", id: "c", name: "f", input: { x: 1 } },
      ],
      stop_reason: "max_tokens",
      stop_sequence: null,
      usage: { input_tokens: 5, output_tokens: 5, cache_read_input_tokens: 4, cache_creation_input_tokens: 1 },
    });
  });

  it("Connect codes to Anthropic statuses and types; event: error", () => {
    expect(toAnthropicError(new ConnectError("x", Code.NotFound))).toMatchObject({ status: 404, type: "not_found_error" });
    expect(toAnthropicError(new ConnectError("x", Code.Unauthenticated))).toMatchObject({
      status: 401,
      type: "authentication_error",
    });
    expect(toAnthropicError(new ConnectError("x", Code.PermissionDenied))).toMatchObject({
      status: 403,
      type: "permission_error",
    });
    expect(toAnthropicError(new ConnectError("x", Code.Internal))).toMatchObject({
      status: 500,
      type: "api_error",
      headers: { "x-should-retry": "false" },
    });
    const limited = new ConnectError("x", Code.ResourceExhausted, { "retry-after": "2" });
    expect(toAnthropicError(limited)).toMatchObject({ status: 429, type: "rate_limit_error", headers: { "retry-after": "2" } });
    expect(sseErrorEvent(new ConnectError("boom", Code.Unavailable), "req-1")).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"},"request_id":"req-1"}\n\n',
    );
  });
});
