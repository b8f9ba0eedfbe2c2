import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { StreamCompleteResponseSchema, type StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason } from "../../../gen/sluice/v1/chat_pb.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { failures } from "../../errors/failure-table.js";
import type { SseEvent } from "../../transport/sse-parser.js";
import { translateAnthropicStream } from "./stream.js";
import { finishReasonOf } from "./usage.js";
import type { WireFailures } from "./wire.js";

const wire: WireFailures = {
  provider: "claude",
  malformed: (what) => new UpstreamError({ failure: failures.malformed, provider: "claude", message: what }),
  streamCut: (what) => new UpstreamError({ failure: failures.streamCut, provider: "claude", message: what }),
};

type Wire = [event: string, data: unknown];

function sse(...events: Wire[]): SseEvent[] {
  return events.map(([event, data]) => ({
    event,
    data: typeof data === "string" ? data : JSON.stringify(data),
    id: undefined,
  }));
}

async function* feed(events: SseEvent[]): AsyncGenerator<SseEvent> {
  for (const event of events) yield event;
}

async function run(events: SseEvent[]): Promise<StreamCompleteResponse[]> {
  const out: StreamCompleteResponse[] = [];
  for await (const event of translateAnthropicStream(feed(events), wire)) out.push(event);
  return out;
}

async function failure(events: SseEvent[]): Promise<{ error: UpstreamError; seen: StreamCompleteResponse[] }> {
  const seen: StreamCompleteResponse[] = [];
  try {
    for await (const event of translateAnthropicStream(feed(events), wire)) seen.push(event);
  } catch (err) {
    // Not toBeInstanceOf: ConnectError's static Symbol.hasInstance (inherited) answers
    // false for an UpstreamError, so the prototype chain is asked directly.
    expect(Object.prototype.isPrototypeOf.call(UpstreamError.prototype, err as object)).toBe(true);
    return { error: err as UpstreamError, seen };
  }
  throw new Error(`expected the stream to fail; it yielded ${seen.length} events`);
}

const json = (events: StreamCompleteResponse[]) => events.map((e) => toJson(StreamCompleteResponseSchema, e));

const start = (usage: Record<string, unknown> = { input_tokens: 10, output_tokens: 1 }): Wire => [
  "message_start",
  { type: "message_start", message: { id: "msg_1", type: "message", role: "assistant", model: "claude-x", content: [], usage } },
];
const blockStart = (index: number, block: Record<string, unknown>): Wire => [
  "content_block_start",
  { type: "content_block_start", index, content_block: block },
];
const delta = (index: number, d: Record<string, unknown>): Wire => [
  "content_block_delta",
  { type: "content_block_delta", index, delta: d },
];
const messageDelta = (stop: string | null, usage: Record<string, unknown>): Wire => [
  "message_delta",
  { type: "message_delta", delta: { stop_reason: stop, stop_sequence: null }, usage },
];
const stop: Wire = ["message_stop", { type: "message_stop" }];

describe("translateAnthropicStream", () => {
  it("indexes tool calls by their position among the turn's calls, not by content block", async () => {
    const events = await run(
      sse(
        start(),
        blockStart(0, { type: "text", text: "" }),
        delta(0, { type: "text_delta", text: "Checking." }),
        ["content_block_stop", { type: "content_block_stop", index: 0 }],
        blockStart(1, { type: "server_tool_use", id: "srv_1", name: "web_search", input: {} }),
        delta(1, { type: "input_json_delta", partial_json: '{"query":"x"}' }),
        blockStart(2, { type: "tool_use", id: "toolu_a", name: "f", input: {} }),
        blockStart(3, { type: "tool_use", id: "toolu_b", name: "g", input: {} }),
        delta(2, { type: "input_json_delta", partial_json: "" }),
        delta(3, { type: "input_json_delta", partial_json: '{"b":' }),
        delta(2, { type: "input_json_delta", partial_json: '{"a":1}' }),
        delta(3, { type: "input_json_delta", partial_json: "2}" }),
        messageDelta("tool_use", { output_tokens: 30 }),
        stop,
      ),
    );
    expect(json(events)).toEqual([
      { start: { id: "msg_1", model: "claude-x", provider: "claude" } },
      { delta: { text: "Checking." } },
      { toolCallDelta: { id: "toolu_a", name: "f" } },
      { toolCallDelta: { index: 1, id: "toolu_b", name: "g" } },
      { toolCallDelta: { index: 1, arguments: '{"b":' } },
      { toolCallDelta: { arguments: '{"a":1}' } },
      { toolCallDelta: { index: 1, arguments: "2}" } },
      { done: { finishReason: "FINISH_REASON_TOOL_CALLS", usage: { inputTokens: 10, outputTokens: 30 } } },
    ]);
  });

  it("merges message_delta's running totals over message_start's usage (usage merge)", async () => {
    const prompt = { input_tokens: 100, cache_read_input_tokens: 20, cache_creation_input_tokens: 5, output_tokens: 1 };
    // Only output_tokens in the delta: the prompt side stays, output is replaced (not 1 + 50).
    let events = await run(sse(start(prompt), messageDelta("end_turn", { output_tokens: 50 }), stop));
    expect(json(events).at(-1)).toEqual({
      done: {
        finishReason: "FINISH_REASON_STOP",
        usage: { inputTokens: 125, outputTokens: 50, cachedInputTokens: 20, cacheWriteInputTokens: 5 },
      },
    });
    // The delta restates prompt counts: the later ones win; nulls keep what was known.
    events = await run(
      sse(
        start(prompt),
        messageDelta("end_turn", {
          input_tokens: 90,
          cache_read_input_tokens: 30,
          cache_creation_input_tokens: null,
          output_tokens: 60,
          output_tokens_details: { thinking_tokens: 12 },
        }),
        stop,
      ),
    );
    expect(json(events).at(-1)).toEqual({
      done: {
        finishReason: "FINISH_REASON_STOP",
        usage: { inputTokens: 125, outputTokens: 60, cachedInputTokens: 30, cacheWriteInputTokens: 5, reasoningTokens: 12 },
      },
    });
  });

  it("streams thinking as reasoning and skips signatures, empty fragments and unknown blocks and events", async () => {
    const events = await run(
      sse(
        start(),
        ["ping", { type: "ping" }],
        blockStart(0, { type: "thinking", thinking: "", signature: "" }),
        delta(0, { type: "thinking_delta", thinking: "Hmm" }),
        delta(0, { type: "thinking_delta", thinking: "" }),
        delta(0, { type: "signature_delta", signature: "c2ln" }),
        blockStart(1, { type: "redacted_thinking", data: "xx" }),
        blockStart(2, { type: "compaction", content: null }),
        delta(2, { type: "compaction_delta", content: "summary" }),
        ["brand_new_event", { type: "brand_new_event", anything: [1] }],
        blockStart(3, { type: "text", text: "" }),
        delta(3, { type: "text_delta", text: "" }),
        delta(3, { type: "citations_delta", citation: {} }),
        delta(3, { type: "text_delta", text: "Yes" }),
        delta(3, { type: "thinking_delta", thinking: "not in a thinking block" }),
        messageDelta("end_turn", { output_tokens: 5 }),
        stop,
      ),
    );
    expect(json(events)).toEqual([
      { start: { id: "msg_1", model: "claude-x", provider: "claude" } },
      { reasoningDelta: { text: "Hmm" } },
      { delta: { text: "Yes" } },
      { done: { finishReason: "FINISH_REASON_STOP", usage: { inputTokens: 10, outputTokens: 5 } } },
    ]);
  });

  it("emits text that a block carries in its start event", async () => {
    const events = await run(sse(start(), blockStart(0, { type: "text", text: "Hi" }), messageDelta("end_turn", {}), stop));
    expect(json(events)[1]).toEqual({ delta: { text: "Hi" } });
  });

  it("reads events that lack an event: line by their data type", async () => {
    const named: Wire[] = [
      start(),
      blockStart(0, { type: "text", text: "" }),
      delta(0, { type: "text_delta", text: "ok" }),
      messageDelta("end_turn", {}),
      stop,
    ];
    const events = await run(sse(...named.map(([, data]): Wire => ["message", data])));
    expect(json(events).map((e) => Object.keys(e as object)[0])).toEqual(["start", "delta", "done"]);
  });

  it("stops reading at message_stop", async () => {
    let pulledAfterStop = false;
    async function* source(): AsyncGenerator<SseEvent> {
      yield* sse(start(), messageDelta("end_turn", {}), stop);
      pulledAfterStop = true;
      yield* sse(["content_block_start", "not even JSON"]);
    }
    const events: StreamCompleteResponse[] = [];
    for await (const event of translateAnthropicStream(source(), wire)) events.push(event);
    expect(events.map((e) => e.event.case)).toEqual(["start", "done"]);
    expect(pulledAfterStop).toBe(false);
  });

  it("throws streamCut when the events end before message_stop", async () => {
    const cut = await failure(
      sse(start(), blockStart(0, { type: "text", text: "" }), delta(0, { type: "text_delta", text: "Hel" })),
    );
    expect(cut.error.failure).toBe(failures.streamCut);
    expect(cut.error.code).toBe(Code.Unavailable);
    expect(cut.seen.map((e) => e.event.case)).toEqual(["start", "delta"]);

    const afterDelta = await failure(sse(start(), messageDelta("end_turn", { output_tokens: 3 })));
    expect(afterDelta.error.failure).toBe(failures.streamCut);

    const empty = await failure([]);
    expect(empty.error.failure).toBe(failures.streamCut);
  });

  it.each([
    ["overloaded_error", Code.Unavailable, "UPSTREAM_OVERLOADED", true],
    ["rate_limit_error", Code.ResourceExhausted, "UPSTREAM_RATE_LIMITED", true],
    ["api_error", Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    ["timeout_error", Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
    ["invalid_request_error", Code.InvalidArgument, "UPSTREAM_BAD_REQUEST", false],
    ["something_new_error", Code.Unavailable, "UPSTREAM_UNAVAILABLE", true],
  ] as const)("throws on event: error %s, classified by the failure table", async (type, code, reason, retryable) => {
    const { error, seen } = await failure(
      sse(
        start(),
        blockStart(0, { type: "text", text: "" }),
        ["error", { type: "error", error: { type, message: "Boom" } }],
        stop,
      ),
    );
    expect(seen.map((e) => e.event.case)).toEqual(["start"]);
    expect(error.code).toBe(code);
    expect(error.failure.reason).toBe(reason);
    expect(error.failure.retryable).toBe(retryable);
    expect(error.message).toContain(`${type}: Boom`);
  });

  it("hides the message of an auth error event and survives an unreadable one", async () => {
    const auth = await failure(
      sse([
        "error",
        { type: "error", error: { type: "authentication_error", message: "invalid x-api-key sk-ant-api03-abcdef" } },
      ]),
    );
    expect(auth.error.code).toBe(Code.Internal);
    expect(auth.error.failure.reason).toBe("UPSTREAM_AUTH");
    expect(auth.error.message).not.toContain("x-api-key");
    expect(auth.error.message).not.toContain("sk-ant");

    const garbled = await failure(sse(["error", "<html>502</html>"]));
    expect(garbled.error.code).toBe(Code.Unavailable);
  });

  it("reports protocol violations as malformed", async () => {
    const cases: SseEvent[][] = [
      sse(["message_start", "{not json"]),
      sse(["message_start", { type: "message_start", message: { id: 1 } }]),
      sse(blockStart(0, { type: "text", text: "" })),
      sse(stop),
      sse(start(), start()),
      sse(start(), blockStart(0, { type: "tool_use", input: {} })),
      sse(start(), ["content_block_delta", { type: "content_block_delta", delta: { type: "text_delta", text: "x" } }]),
    ];
    for (const events of cases) {
      const { error } = await failure(events);
      expect(error.failure).toBe(failures.malformed);
      expect(Object.prototype.isPrototypeOf.call(ConnectError.prototype, error)).toBe(true);
    }
  });
});

describe("finishReasonOf", () => {
  it.each([
    ["end_turn", FinishReason.STOP],
    ["stop_sequence", FinishReason.STOP],
    ["max_tokens", FinishReason.LENGTH],
    ["model_context_window_exceeded", FinishReason.LENGTH],
    ["tool_use", FinishReason.TOOL_CALLS],
    ["refusal", FinishReason.REFUSAL],
    ["pause_turn", FinishReason.PAUSE],
    ["a_reason_from_the_future", FinishReason.OTHER],
    [null, FinishReason.UNSPECIFIED],
    [undefined, FinishReason.UNSPECIFIED],
  ])("maps %s", (reason, expected) => {
    expect(finishReasonOf(reason)).toBe(expected);
  });
});
