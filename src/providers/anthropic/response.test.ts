import { describe, expect, it } from "vitest";
import { toJson } from "@bufbuild/protobuf";
import { CompleteResponseSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { failures } from "../../errors/failure-table.js";
import { fromAnthropicMessage } from "./response.js";
import type { WireFailures } from "./wire.js";
import { nockRecordings } from "../../../test/fixtures/providers/anthropic/fixtures.js";

const wire: WireFailures = {
  provider: "claude",
  malformed: (what) => new UpstreamError({ failure: failures.malformed, provider: "claude", message: what }),
  streamCut: (what) => new UpstreamError({ failure: failures.streamCut, provider: "claude", message: what }),
};

describe("fromAnthropicMessage", () => {
  it("translates a recorded tool_use answer", () => {
    const response = fromAnthropicMessage(nockRecordings()[0]!.response, wire);
    expect(toJson(CompleteResponseSchema, response)).toEqual({
      id: "msg_012foMGXNQ1eqhaq3QvA5dY6",
      model: "claude-sonnet-4-20250514",
      provider: "claude",
      message: {
        role: "ROLE_ASSISTANT",
        content: [{ text: 'I\'ll use the test_tool with the value "test" as requested, then provide a final response.' }],
        toolCalls: [{ id: "toolu_011LF2VkWpAfJnTKJcmh1PNf", name: "test_tool", arguments: '{"value":"test"}' }],
      },
      finishReason: "FINISH_REASON_TOOL_CALLS",
      usage: { inputTokens: 415, outputTokens: 76 },
    });
  });

  it("counts cache reads and writes into the whole prompt, reads thinking, skips blocks it has no field for", () => {
    const response = fromAnthropicMessage(
      {
        id: "msg_x",
        type: "message",
        role: "assistant",
        model: "claude-opus-4-7",
        content: [
          { type: "thinking", thinking: "First, ", signature: "c2ln" },
          { type: "redacted_thinking", data: "opaque" },
          { type: "server_tool_use", id: "srvtoolu_1", name: "web_search", input: { query: "q" } },
          { type: "web_search_tool_result", tool_use_id: "srvtoolu_1", content: [] },
          { type: "thinking", thinking: "then.", signature: "c2ln" },
          { type: "text", text: "Part one. ", citations: [] },
          { type: "text", text: "Part two." },
          { type: "tool_use", id: "toolu_2", name: "noop", input: {} },
          { type: "a_block_from_the_future" },
        ],
        stop_reason: "pause_turn",
        usage: {
          input_tokens: 10,
          cache_read_input_tokens: 1000,
          cache_creation_input_tokens: 200,
          output_tokens: 50,
          server_tool_use: { web_search_requests: 1 },
        },
      },
      wire,
    );
    expect(toJson(CompleteResponseSchema, response)).toEqual({
      id: "msg_x",
      model: "claude-opus-4-7",
      provider: "claude",
      message: {
        role: "ROLE_ASSISTANT",
        content: [{ text: "Part one. " }, { text: "Part two." }],
        toolCalls: [{ id: "toolu_2", name: "noop", arguments: "{}" }],
        reasoning: "First, then.",
      },
      finishReason: "FINISH_REASON_PAUSE",
      usage: { inputTokens: 1210, outputTokens: 50, cachedInputTokens: 1000, cacheWriteInputTokens: 200 },
    });
  });

  it("reports an unreadable message as malformed", () => {
    for (const body of [
      null,
      "text",
      { id: "m", model: "x" },
      { id: 1, model: "x", content: [] },
      { id: "m", model: "x", content: [{ type: "tool_use", input: {} }] },
    ]) {
      let caught: unknown;
      try {
        fromAnthropicMessage(body, wire);
      } catch (err) {
        caught = err;
      }
      expect((caught as UpstreamError | undefined)?.failure).toBe(failures.malformed);
    }
  });
});
