import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FinishReason } from "../../../../gen/sluice/v1/chat_pb.js";
import { StreamCompleteResponseSchema, type StreamCompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { ChatChunkEncoder, sseDone } from "./stream.js";

const ev = (event: unknown): StreamCompleteResponse => create(StreamCompleteResponseSchema, { event } as never);
const chunks = (text: string) =>
  text
    .split("\n\n")
    .filter((frame) => frame !== "" && frame !== "data: [DONE]")
    .map((frame) => JSON.parse(frame.slice("data: ".length)));

describe("ChatChunkEncoder", () => {
  it("writes OpenAI chunks: role, content, reasoning, tool call fragments, finish, usage, [DONE]", () => {
    const encoder = new ChatChunkEncoder(true);
    let out = encoder.encode(ev({ case: "start", value: { id: "c1", model: "gpt-4o", provider: "p" } }));
    out += encoder.encode(ev({ case: "delta", value: { text: "Hi" } }));
    out += encoder.encode(ev({ case: "reasoningDelta", value: { text: "hmm" } }));
    out += encoder.encode(ev({ case: "toolCallDelta", value: { index: 0, id: "t1", name: "f", arguments: "" } }));
    out += encoder.encode(ev({ case: "toolCallDelta", value: { index: 0, id: "", name: "", arguments: '{"a":1}' } }));
    out += encoder.encode(
      ev({
        case: "done",
        value: { finishReason: FinishReason.TOOL_CALLS, usage: { inputTokens: 3, outputTokens: 4, cachedInputTokens: 1 } },
      }),
    );
    expect(out.endsWith(sseDone)).toBe(true);
    const all = chunks(out);
    expect(all.every((c) => c.id === "c1" && c.object === "chat.completion.chunk" && c.model === "gpt-4o")).toBe(true);
    expect(all.map((c) => c.choices[0]?.delta)).toEqual([
      { role: "assistant", content: "" },
      { content: "Hi" },
      { reasoning_content: "hmm" },
      { tool_calls: [{ index: 0, id: "t1", type: "function", function: { name: "f", arguments: "" } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"a":1}' } }] },
      {},
      undefined,
    ]);
    expect(all[5].choices[0].finish_reason).toBe("tool_calls");
    expect(all[6]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: 1 } },
    });
    expect(all[0].usage).toBeNull();
  });

  it("without include_usage: no usage chunk, no usage key", () => {
    const encoder = new ChatChunkEncoder(false);
    let out = encoder.encode(ev({ case: "start", value: { id: "c", model: "m", provider: "p" } }));
    out += encoder.encode(ev({ case: "done", value: { finishReason: FinishReason.LENGTH } }));
    const all = chunks(out);
    expect(all).toHaveLength(2);
    expect(all[1].choices[0].finish_reason).toBe("length");
    expect("usage" in all[0]).toBe(false);
  });
});
