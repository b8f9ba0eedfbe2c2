import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CompleteRequestSchema,
  type CompleteRequest,
  type StreamCompleteResponse,
} from "../../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role, type Usage } from "../../../../gen/sluice/v1/chat_pb.js";
import { RetryInfoSchema } from "../../../../gen/google/rpc/error_details_pb.js";
import { UpstreamError } from "../../../../src/errors/gateway-error.js";
import { providerSchema, type AnthropicProviderConfig } from "../../../../src/config/provider-schema.js";
import type { Provider, UpstreamCall } from "../../../../src/providers/provider.js";
import { createAnthropicProvider } from "../../../../src/providers/anthropic/anthropic-provider.js";
import { jsonResponse, splitEvery, sseResponse, startFakeUpstream, type FakeUpstream } from "../../../helpers/fake-upstream.js";
import {
  nockRecordings,
  readFixture,
  recordedErrors,
  sseTranscript,
  streamFixtures,
} from "../../../fixtures/providers/anthropic/fixtures.js";
import { messagesRequestSchema } from "../../../fixtures/providers/anthropic/messages-request-schema.js";

let upstream: FakeUpstream;
let provider: Provider;
const apiKey = "sk-ant-api03-test-key-0123456789";

function anthropicConfig(init: Record<string, unknown>): AnthropicProviderConfig {
  const config = providerSchema.parse({ type: "anthropic", ...init });
  if (config.type !== "anthropic") throw new Error("unreachable");
  return config;
}

beforeAll(async () => {
  upstream = await startFakeUpstream();
  provider = createAnthropicProvider(
    "claude",
    anthropicConfig({
      baseUrl: upstream.origin,
      apiKey,
      beta: ["fine-grained-tool-streaming-2025-05-14", "interleaved-thinking-2025-05-14"],
      headers: { "X-Team": "core" },
    }),
  );
});

afterAll(async () => {
  await provider.close();
  await upstream.close();
});

beforeEach(() => {
  upstream.respond(() => ({ status: 500 }));
});

function call(init: Partial<UpstreamCall> = {}): UpstreamCall {
  return {
    model: "claude-sonnet-4-5",
    signal: new AbortController().signal,
    defaultMaxOutputTokens: 1024,
    ...init,
  };
}

const hello: CompleteRequest = create(CompleteRequestSchema, {
  model: "smart",
  messages: [
    { role: Role.SYSTEM, content: [{ part: { case: "text", value: "Be brief." } }] },
    { role: Role.USER, content: [{ part: { case: "text", value: "Hello" } }] },
  ],
});

async function collect(request: CompleteRequest, c: UpstreamCall = call()): Promise<StreamCompleteResponse[]> {
  const events: StreamCompleteResponse[] = [];
  for await (const event of provider.stream(request, c)) events.push(event);
  return events;
}

/** The error a promise rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    // The prototype chain, not instanceof: ConnectError's static Symbol.hasInstance,
    // inherited by UpstreamError, answers false for an UpstreamError.
    expect(Object.prototype.isPrototypeOf.call(ConnectError.prototype, err as object)).toBe(true);
    return err as ConnectError;
  }
  throw new Error("expected a rejection");
}

async function streamFailure(request: CompleteRequest, c: UpstreamCall = call()) {
  const seen: StreamCompleteResponse[] = [];
  const error = await rejection(
    (async () => {
      for await (const event of provider.stream(request, c)) seen.push(event);
    })(),
  );
  return { error, seen };
}

function upstreamFacts(error: ConnectError) {
  expect(Object.prototype.isPrototypeOf.call(UpstreamError.prototype, error)).toBe(true);
  const e = error as UpstreamError;
  return { code: e.code, reason: e.failure.reason, retryable: e.failure.retryable, failover: e.failure.failover };
}

// ---- stream replay -------------------------------------------------------------------

type Compact =
  | ["start", string, string]
  | ["text", string]
  | ["reasoning", string]
  | ["tool", number, string, string]
  | ["args", number, string]
  | ["done", FinishReason, { input: number; output: number; cachedInput: number; cacheWrite: number; reasoning: number }];

/** Events in a form a table can spell out; every field of every event is kept. */
function compact(events: StreamCompleteResponse[]): unknown[][] {
  return events.map(({ event }) => {
    switch (event.case) {
      case "start":
        expect(event.value.provider).toBe("claude");
        return ["start", event.value.id, event.value.model];
      case "delta":
        return ["text", event.value.text];
      case "reasoningDelta":
        return ["reasoning", event.value.text];
      case "toolCallDelta": {
        const { index, id, name, arguments: args } = event.value;
        if (id !== "" || name !== "") return args === "" ? ["tool", index, id, name] : ["tool", index, id, name, args];
        return ["args", index, args];
      }
      case "done": {
        const u = event.value.usage as Usage;
        return [
          "done",
          event.value.finishReason,
          {
            input: u.inputTokens,
            output: u.outputTokens,
            cachedInput: u.cachedInputTokens,
            cacheWrite: u.cacheWriteInputTokens,
            reasoning: u.reasoningTokens,
          },
        ];
      }
      default:
        return ["unexpected", event.case];
    }
  });
}

/**
 * Every recorded stream, event for event. Tool call fragments are the recorded
 * input_json_delta fragments (the empty first one skipped); usage is message_start's
 * prompt side with message_delta's running totals laid over it.
 */
const expectedStreams: Record<string, Compact[]> = {
  "sse/py_tool_use_response.sse": [
    ["start", "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514"],
    ["text", "I"],
    ["text", "'ll check the current weather in Paris for you."],
    ["tool", 0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"],
    ["args", 0, '{"locati'],
    ["args", 0, 'on": "P'],
    ["args", 0, "ar"],
    ["args", 0, 'is"}'],
    ["done", FinishReason.TOOL_CALLS, { input: 377, output: 65, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/ts_basic_text.sse": [
    ["start", "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-20240229"],
    ["text", "Hello"],
    ["text", " there"],
    ["text", "!"],
    ["done", FinishReason.STOP, { input: 11, output: 6, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/ts_incomplete_partial_json_max_tokens.sse": [
    ["start", "msg_01UdjYBBipA9omjYhicnevgq", "claude-3-7-sonnet-20250219"],
    ["text", "I"],
    ["text", "'ll create a comprehensive tax guide for"],
    ["text", " someone with multiple W2s an"],
    ["text", "d save it in a file called taxes.txt. Let"],
    ["text", " me do that for you now."],
    ["tool", 0, "toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file"],
    ["args", 0, '{"filename": "taxes.txt'],
    [
      "args",
      0,
      '", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",',
    ],
    ["args", 0, '\n"Filing taxes'],
    ["done", FinishReason.LENGTH, { input: 450, output: 124, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/ts_tool_use.sse": [
    ["start", "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514"],
    ["text", "I"],
    ["text", "'ll check the current weather in Paris for you."],
    ["tool", 0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"],
    ["args", 0, '{"locati'],
    ["args", 0, 'on": "P'],
    ["args", 0, "ar"],
    ["args", 0, 'is"}'],
    ["done", FinishReason.TOOL_CALLS, { input: 377, output: 65, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/docs/docs_basic_streaming.sse": [
    ["start", "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "claude-sonnet-4-5-20250929"],
    ["text", "Hello"],
    ["text", "!"],
    ["done", FinishReason.STOP, { input: 25, output: 15, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/docs/docs_error_event_overloaded.sse": [
    // (an error event: see "ends docs_error_event_overloaded…") {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
  ],
  "sse/docs/docs_extended_thinking_streaming.sse": [
    ["start", "msg_01...", "claude-sonnet-4-5-20250929"],
    ["reasoning", "Let me solve this step by step:\n\n1. First break down 27 * 453"],
    ["reasoning", "\n2. 453 = 400 + 50 + 3"],
    ["reasoning", "\n3. 27 * 400 = 10,800"],
    ["reasoning", "\n4. 27 * 50 = 1,350"],
    ["reasoning", "\n5. 27 * 3 = 81"],
    ["reasoning", "\n6. 10,800 + 1,350 + 81 = 12,231"],
    ["text", "27 * 453 = 12,231"],
    ["done", FinishReason.STOP, { input: 0, output: 0, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/docs/docs_tool_use_streaming.sse": [
    ["start", "msg_014p7gG3wDgGV9EUtLvnow3U", "claude-sonnet-4-5-20250929"],
    ["text", "Okay"],
    ["text", ","],
    ["text", " let"],
    ["text", "'s"],
    ["text", " check"],
    ["text", " the"],
    ["text", " weather"],
    ["text", " for"],
    ["text", " San"],
    ["text", " Francisco"],
    ["text", ","],
    ["text", " CA"],
    ["text", ":"],
    ["tool", 0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"],
    ["args", 0, '{"location":'],
    ["args", 0, ' "San'],
    ["args", 0, " Francisc"],
    ["args", 0, "o,"],
    ["args", 0, ' CA"'],
    ["args", 0, ", "],
    ["args", 0, '"unit": "fah'],
    ["args", 0, 'renheit"}'],
    ["done", FinishReason.TOOL_CALLS, { input: 472, output: 89, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/sdk_authored/py_compaction_response.sse": [
    ["start", "msg_01CompactionEncryptedContent01", "claude-opus-4-7"],
    ["text", "Hello there!"],
    ["done", FinishReason.STOP, { input: 30, output: 8, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/sdk_authored/py_fallback_credit_response.sse": [
    ["start", "msg_01FallbackCreditUsage0000001", "claude-sonnet-4-5"],
    ["text", "Hello there!"],
    ["done", FinishReason.STOP, { input: 25, output: 8, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/sdk_authored/py_fallback_response.sse": [
    ["start", "msg_01FallbackModelRelabel000001", "claude-opus-4-7"],
    ["text", "Hello there!"],
    ["done", FinishReason.STOP, { input: 25, output: 8, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/sdk_authored/py_refusal_response.sse": [
    ["start", "msg_01RefusalTestMessage123456789", "claude-opus-4-7"],
    ["done", FinishReason.REFUSAL, { input: 20, output: 0, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
  "sse/sdk_authored/ts_fable_fallback_stream-a-refusal.sse": [
    ["start", "msg_fixture_a_0001", "claude-fable-5"],
    ["reasoning", "Simple educ"],
    [
      "reasoning",
      "ational question about what a solar eclipse is. This is benign general knowledge — definitions are fine. Also the user called",
    ],
    ["reasoning", ' me "claudius" — I\'m Claude. Minor correction or just roll with it politely.'],
    ["text", "Hi"],
    ["done", FinishReason.REFUSAL, { input: 28, output: 106, cachedInput: 0, cacheWrite: 0, reasoning: 67 }],
  ],
  "sse/sdk_authored/ts_fable_fallback_stream-a-toolrefusal.sse": [
    ["start", "msg_fixture_atool_0001", "claude-fable-5"],
    ["text", "Here's a summary of this year's solar eclipses and how"],
    ["done", FinishReason.REFUSAL, { input: 28, output: 106, cachedInput: 0, cacheWrite: 0, reasoning: 67 }],
  ],
  "sse/sdk_authored/ts_fable_fallback_stream-b-fallback.sse": [
    ["start", "msg_fixture_b_0001", "claude-opus-4-8"],
    ["text", " there! Happy to expl"],
    [
      "text",
      "ain.\n\n**Solar eclipses** happen when the Moon passes between the Sun and the Earth, casting a shadow that blocks s",
    ],
    ["text", "ome or all of the Sun's light for viewers inside it. They're one of the most dramatic sights in the sky."],
    ["text", "\n\nSome key points:\n\n**The three main types:**\n- Total"],
    ["text", " (the Moon completely covers the Sun's disk)\n- Partial (only part of the Sun is covered)\n- Annular (the"],
    ["text", " famous *ring of fire*)\n\n**Why they're so striking:**\n- Totality can turn day into twilight (for"],
    [
      "text",
      " a few minutes), and the Sun's corona becomes visible to the naked eye\n- Temperatures can drop noticeably while the shadow",
    ],
    ["text", " passes over\n- Animals sometimes behave as if night has fallen\n\n**Viewing safely:**"],
    ["text", "\n- **Certified eclipse glasses** are a must for looking at the Sun directly. Ordinary"],
    ["text", " sunglasses are not safe, even very dark ones.\n- A pinhole projector is an easy, safe alter"],
    ["text", "native.\n\n**Why they're rare:**\nThe Moon's shadow traces a ("],
    ["text", "narrow) path across the Earth, so any given spot sees a total eclipse only"],
    [
      "text",
      " about once every few centuries. That rarity is a big part of the excitement.\n\nIs there a particular angle you're cur",
    ],
    [
      "text",
      "ious about? For example, I'd be happy to go deeper on the history, the science of totality, safe viewing, or how they",
    ],
    ["text", "'re portrayed in fiction. Just let me know what's sparking your interest!"],
    ["done", FinishReason.STOP, { input: 31, output: 547, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
  ],
};

/** The arguments of each tool call, joined: what a caller assembling the stream gets. */
const expectedArguments: Record<string, string[]> = {
  "sse/ts_tool_use.sse": ['{"location": "Paris"}'],
  "sse/py_tool_use_response.sse": ['{"location": "Paris"}'],
  "sse/docs/docs_tool_use_streaming.sse": ['{"location": "San Francisco, CA", "unit": "fahrenheit"}'],
  "sse/ts_incomplete_partial_json_max_tokens.sse": [
    '{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes',
  ],
};

const errorFixture = "sse/docs/docs_error_event_overloaded.sse";
const completeStreams = streamFixtures().filter((f) => f !== errorFixture);

/** Cuts at seeded pseudo-random sizes from 1 to 97 bytes (mulberry32). */
function splitSeeded(text: string, seed: number): Uint8Array[] {
  const bytes = Buffer.from(text, "utf8");
  const out: Uint8Array[] = [];
  let state = seed;
  for (let i = 0; i < bytes.length; ) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    const size = 1 + (((t ^ (t >>> 14)) >>> 0) % 97);
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

const splits: Array<[string, (text: string) => Array<string | Uint8Array>]> = [
  ["whole", (text) => [text]],
  ["1-byte", (text) => splitEvery(text, 1)],
  ["7-byte", (text) => splitEvery(text, 7)],
  ["64-byte", (text) => splitEvery(text, 64)],
  ["seeded", (text) => splitSeeded(text, 0xa17e)],
];

describe("stream: recorded transcripts over loopback HTTP", () => {
  it("has an expectation for every recorded stream", () => {
    expect(Object.keys(expectedStreams).sort()).toEqual(streamFixtures().sort());
    expect(completeStreams.length).toBeGreaterThanOrEqual(14);
  });

  describe.each(completeStreams)("%s", (fixture) => {
    it.each(splits)("replays %s chunks into the exact event sequence", async (_label, split) => {
      upstream.respond(() => sseResponse(split(sseTranscript(fixture))));
      const events = await collect(hello);
      expect(compact(events)).toEqual(expectedStreams[fixture]);

      // Exactly one start, first; exactly one done, last.
      expect(events.filter((e) => e.event.case === "start")).toHaveLength(1);
      expect(events[0]!.event.case).toBe("start");
      expect(events.filter((e) => e.event.case === "done")).toHaveLength(1);
      expect(events.at(-1)!.event.case).toBe("done");

      const args: string[] = [];
      for (const { event } of events) {
        if (event.case === "toolCallDelta") args[event.value.index] = (args[event.value.index] ?? "") + event.value.arguments;
      }
      expect(args).toEqual(expectedArguments[fixture] ?? []);
    });

    it("throws a stream cut, never done, when the transcript stops before message_stop", async () => {
      const transcript = sseTranscript(fixture);
      const at = transcript.lastIndexOf("event: message_stop");
      expect(at).toBeGreaterThan(0);
      for (const cut of [transcript.slice(0, at), transcript.slice(0, Math.floor(at / 2))]) {
        upstream.respond(() => sseResponse(splitEvery(cut, 64)));
        const { error, seen } = await streamFailure(hello);
        expect(upstreamFacts(error)).toMatchObject({
          code: Code.Unavailable,
          reason: "UPSTREAM_STREAM_INCOMPLETE",
          retryable: true,
        });
        expect(seen.some((e) => e.event.case === "done")).toBe(false);
      }
    });
  });

  it("ends ts_incomplete_partial_json_max_tokens with done/LENGTH though its tool block never stops", async () => {
    upstream.respond(() => sseResponse(splitEvery(sseTranscript("sse/ts_incomplete_partial_json_max_tokens.sse"), 7)));
    const events = await collect(hello);
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.finishReason).toBe(FinishReason.LENGTH);
  });

  it("ends docs_error_event_overloaded with UNAVAILABLE, before any event", async () => {
    upstream.respond(() => sseResponse([sseTranscript(errorFixture)]));
    const { error, seen } = await streamFailure(hello);
    expect(seen).toEqual([]);
    expect(upstreamFacts(error)).toEqual({
      code: Code.Unavailable,
      reason: "UPSTREAM_OVERLOADED",
      retryable: true,
      failover: true,
    });
    expect(error.rawMessage).toContain("Overloaded");
  });

  it("ends with the classified error when event: error arrives mid-stream", async () => {
    const transcript = sseTranscript("sse/ts_basic_text.sse");
    const at = transcript.indexOf("event: content_block_stop");
    upstream.respond(() =>
      sseResponse(splitEvery(transcript.slice(0, at) + sseTranscript(errorFixture) + transcript.slice(at), 7)),
    );
    const { error, seen } = await streamFailure(hello);
    expect(compact(seen)).toEqual(expectedStreams["sse/ts_basic_text.sse"]!.slice(0, 4));
    expect(upstreamFacts(error)).toMatchObject({ code: Code.Unavailable, reason: "UPSTREAM_OVERLOADED" });
  });

  it("treats a file replayed verbatim, its last blank line missing, as cut", async () => {
    const verbatim = readFixture("sse/ts_basic_text.sse");
    expect(verbatim.endsWith("\n\n")).toBe(false);
    upstream.respond(() => sseResponse([verbatim]));
    const { error, seen } = await streamFailure(hello);
    expect(upstreamFacts(error).reason).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect(seen.at(-1)!.event.case).toBe("delta");
  });

  it("fails with UNAVAILABLE when the socket resets mid-stream", async () => {
    const chunks = splitEvery(sseTranscript("sse/ts_basic_text.sse"), 64);
    upstream.respond(() => sseResponse(chunks, { resetAfterChunks: 4 }));
    const { error, seen } = await streamFailure(hello);
    // Whether the bytes before the reset reach the caller first is up to the kernel
    // (a reset may discard them); either way the stream fails and never ends with done.
    expect(seen.map((e) => e.event.case)).toEqual(seen.length === 0 ? [] : ["start", ...seen.slice(1).map(() => "delta")]);
    expect(error.code).toBe(Code.Unavailable);
  });
});

// ---- unary replay --------------------------------------------------------------------

/** Per recording; a tool call's arguments are spelt out when short (else checked by parse). */
const expectedCompletions: Array<{
  id: string;
  model: string;
  textParts: number;
  toolCalls: Array<[string, string, string | undefined]>;
  finish: FinishReason;
  usage: { input: number; output: number };
}> = [
  {
    id: "msg_012foMGXNQ1eqhaq3QvA5dY6",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [["toolu_011LF2VkWpAfJnTKJcmh1PNf", "test_tool", '{"value":"test"}']],
    finish: FinishReason.TOOL_CALLS,
    usage: { input: 415, output: 76 },
  },
  {
    id: "msg_01J176zPPSGQBvQpzw2qy5x4",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 505, output: 41 },
  },
  {
    id: "msg_014tGTGP6AJwJvBHFgXxjp88",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [
      ["toolu_01L8GVQapA1HmggQcrwboukH", "test_tool", '{"count":1}'],
      ["toolu_01J5Fvzxu7DP1Uh59c1kr5JD", "test_tool", '{"count":2}'],
    ],
    finish: FinishReason.TOOL_CALLS,
    usage: { input: 418, output: 113 },
  },
  {
    id: "msg_012FSxyfosSXbcSgY8XJVTTi",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 602, output: 45 },
  },
  {
    id: "msg_01NxJEcDDsnAHe22dkAgkUrB",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [["toolu_01BTPr2x4Nduos6gVrE19JZr", "test_tool", '{"input":"test"}']],
    finish: FinishReason.TOOL_CALLS,
    usage: { input: 415, output: 76 },
  },
  {
    id: "msg_01RVfMNB6BmkupnqNYej3ZXX",
    model: "claude-sonnet-4-20250514",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 505, output: 33 },
  },
  {
    id: "msg_01Y2MsBpmaj4eQtsXSBak3dE",
    model: "claude-sonnet-4-5-20250929",
    textParts: 1,
    toolCalls: [["toolu_01XcUoZcU2fsiw59H5aEAyY6", "submit_analysis", undefined]],
    finish: FinishReason.TOOL_CALLS,
    usage: { input: 591, output: 1056 },
  },
  {
    id: "msg_015Z98DGZr5sNPpJbMWvvvL2",
    model: "claude-sonnet-4-5-20250929",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 311, output: 497 },
  },
  {
    id: "msg_01N9UbaoHz1GvY7recNBxbZA",
    model: "claude-sonnet-4-5-20250929",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 2123, output: 140 },
  },
  {
    id: "msg_01Bua2j6Vmc6uNtYxhdHegLJ",
    model: "claude-sonnet-4-5-20250929",
    textParts: 1,
    toolCalls: [],
    finish: FinishReason.STOP,
    usage: { input: 1847, output: 651 },
  },
];

describe("complete: the nock recordings over loopback HTTP", () => {
  it.each(nockRecordings().map((recording, i) => [i, recording] as const))("replays recording %i", async (i, recording) => {
    const headers = Object.fromEntries(
      Object.entries(recording.rawHeaders).filter(([name]) => name !== "transfer-encoding" && name !== "connection"),
    );
    upstream.respond(() => jsonResponse(recording.status, recording.response, headers));
    const response = await provider.complete(hello, call());
    const expected = expectedCompletions[i]!;
    expect(response.id).toBe(expected.id);
    expect(response.model).toBe(expected.model);
    expect(response.provider).toBe("claude");
    expect(response.finishReason).toBe(expected.finish);
    expect(response.usage).toMatchObject({
      inputTokens: expected.usage.input,
      outputTokens: expected.usage.output,
      cachedInputTokens: 0,
      cacheWriteInputTokens: 0,
      reasoningTokens: 0,
    });
    const message = response.message!;
    expect(message.role).toBe(Role.ASSISTANT);
    const content = recording.response["content"] as Array<{ type: string; text?: string; input?: unknown }>;
    expect(message.content).toHaveLength(expected.textParts);
    expect(message.content.map((p) => (p.part.case === "text" ? p.part.value : undefined))).toEqual(
      content.filter((b) => b.type === "text").map((b) => b.text),
    );
    expect(message.toolCalls.map((c) => [c.id, c.name])).toEqual(expected.toolCalls.map(([id, name]) => [id, name]));
    const inputs = content.filter((b) => b.type === "tool_use").map((b) => b.input);
    message.toolCalls.forEach((c, j) => {
      const spelt = expected.toolCalls[j]![2];
      if (spelt !== undefined) expect(c.arguments).toBe(spelt);
      expect(JSON.parse(c.arguments)).toEqual(inputs[j]);
    });
  });

  it("reports a 2xx body that is not JSON as malformed", async () => {
    upstream.respond(() => ({ status: 200, headers: { "content-type": "text/html" }, chunks: ["<html>hi</html>"] }));
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toMatchObject({ code: Code.Internal, reason: "UPSTREAM_MALFORMED" });
  });
});

// ---- what is sent --------------------------------------------------------------------

describe("the upstream request", () => {
  it("POSTs a documented body to /v1/messages with key, version, beta and configured headers", async () => {
    upstream.respond(() => jsonResponse(200, nockRecordings()[1]!.response));
    const before = upstream.requests.length;
    await provider.complete(hello, call());
    const sent = upstream.requests[before]!;
    expect(sent.method).toBe("POST");
    expect(sent.path).toBe("/v1/messages");
    expect(sent.headers["x-api-key"]).toBe(apiKey);
    expect(sent.headers["anthropic-version"]).toBe("2023-06-01");
    expect(sent.headers["anthropic-beta"]).toBe("fine-grained-tool-streaming-2025-05-14,interleaved-thinking-2025-05-14");
    expect(sent.headers["content-type"]).toBe("application/json");
    expect(sent.headers["x-team"]).toBe("core");
    expect(sent.headers["authorization"]).toBeUndefined();
    expect(messagesRequestSchema.safeParse(sent.body).success).toBe(true);
    expect(sent.body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      system: "Be brief.",
      messages: [{ role: "user", content: "Hello" }],
      stream: false,
    });
  });

  it("asks for a stream on stream()", async () => {
    upstream.respond(() => sseResponse([sseTranscript("sse/ts_basic_text.sse")]));
    const before = upstream.requests.length;
    await collect(hello);
    expect((upstream.requests[before]!.body as { stream: boolean }).stream).toBe(true);
  });

  it("keeps a base URL's path and sends no key or beta when none is configured", async () => {
    const bare = createAnthropicProvider("bare", anthropicConfig({ baseUrl: `${upstream.origin}/proxy/anthropic` }));
    try {
      upstream.respond(() => jsonResponse(200, nockRecordings()[1]!.response));
      const before = upstream.requests.length;
      const response = await bare.complete(hello, call({ defaultMaxOutputTokens: undefined }));
      expect(response.provider).toBe("bare");
      const sent = upstream.requests[before]!;
      expect(sent.path).toBe("/proxy/anthropic/v1/messages");
      expect(sent.headers["x-api-key"]).toBeUndefined();
      expect(sent.headers["anthropic-beta"]).toBeUndefined();
      expect((sent.body as { max_tokens: number }).max_tokens).toBe(4096);
    } finally {
      await bare.close();
    }
  });

  it("rejects settings Anthropic lacks before sending anything", async () => {
    const before = upstream.requests.length;
    const withSeed = create(CompleteRequestSchema, { ...hello, seed: 42n, frequencyPenalty: 0.5 });
    const unary = await rejection(provider.complete(withSeed, call()));
    expect(unary.code).toBe(Code.InvalidArgument);
    expect(unary.rawMessage).toContain("seed");
    expect(unary.rawMessage).toContain("provider claude");
    const jsonObject = create(CompleteRequestSchema, {
      messages: hello.messages,
      responseFormat: { format: { case: "jsonObject", value: {} } },
    });
    const streamed = await streamFailure(jsonObject);
    expect(streamed.error.code).toBe(Code.InvalidArgument);
    expect(streamed.seen).toEqual([]);
    expect(upstream.requests.length).toBe(before);
  });
});

// ---- failures ------------------------------------------------------------------------

describe("upstream failures", () => {
  const recorded = recordedErrors();

  it("529 overloaded with x-should-retry: true (recorded) → UNAVAILABLE, retryable", async () => {
    const { status, headers, body } = recorded.s3_overloaded_529;
    upstream.respond(() => jsonResponse(status, body, headers));
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toEqual({
      code: Code.Unavailable,
      reason: "UPSTREAM_OVERLOADED",
      retryable: true,
      failover: true,
    });
    expect((error as UpstreamError).status).toBe(529);
  });

  it("529 before a stream starts fails the stream with no events", async () => {
    const { status, body } = recorded.s3_overloaded_529_with_request_id;
    upstream.respond(() => jsonResponse(status, body));
    const { error, seen } = await streamFailure(hello);
    expect(seen).toEqual([]);
    expect(upstreamFacts(error).reason).toBe("UPSTREAM_OVERLOADED");
  });

  it("429 rate_limit_error (recorded body) with retry-after → RESOURCE_EXHAUSTED + RetryInfo", async () => {
    const { status, body } = recorded.s4_rate_limit_429;
    // retry-after in seconds, as the rate-limit docs (errors §5) describe; the capture
    // did not include its headers.
    upstream.respond(() => jsonResponse(status, body, { "retry-after": "17" }));
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toEqual({
      code: Code.ResourceExhausted,
      reason: "UPSTREAM_RATE_LIMITED",
      retryable: true,
      failover: true,
    });
    expect((error as UpstreamError).retryAfterMs).toBe(17_000);
    const [retryInfo] = error.findDetails(RetryInfoSchema);
    expect(retryInfo?.retryDelay?.seconds).toBe(17n);
  });

  it("404 not_found_error (recorded) → NOT_FOUND", async () => {
    const { status, body } = recorded.s1_not_found_404;
    upstream.respond(() => jsonResponse(status, body));
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toMatchObject({ code: Code.NotFound, reason: "UPSTREAM_MODEL_NOT_FOUND" });
  });

  // The bodies below follow the documented shape (errors §1) with the messages the API
  // gives for these cases; they are not recordings.
  it("401 authentication_error → INTERNAL UPSTREAM_AUTH, the provider's message withheld", async () => {
    upstream.respond(() =>
      jsonResponse(
        401,
        { type: "error", error: { type: "authentication_error", message: "invalid x-api-key" } },
        { "x-should-retry": "false" },
      ),
    );
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toEqual({ code: Code.Internal, reason: "UPSTREAM_AUTH", retryable: false, failover: true });
    expect(error.message).not.toContain("invalid x-api-key");
    expect(error.message).not.toContain(apiKey);
  });

  it("400 'prompt is too long' → INVALID_ARGUMENT CONTEXT_LENGTH_EXCEEDED", async () => {
    upstream.respond(() =>
      jsonResponse(400, {
        type: "error",
        error: { type: "invalid_request_error", message: "prompt is too long: 208310 tokens > 200000 maximum" },
      }),
    );
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toEqual({
      code: Code.InvalidArgument,
      reason: "CONTEXT_LENGTH_EXCEEDED",
      retryable: false,
      failover: false,
    });
    expect(error.rawMessage).toContain("prompt is too long");
  });

  it("413 request_too_large → INVALID_ARGUMENT CONTEXT_LENGTH_EXCEEDED", async () => {
    upstream.respond(() =>
      jsonResponse(413, {
        type: "error",
        error: { type: "request_too_large", message: "Request exceeds the maximum allowed number of bytes." },
      }),
    );
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toMatchObject({ code: Code.InvalidArgument, reason: "CONTEXT_LENGTH_EXCEEDED" });
  });

  it("500 api_error → UNAVAILABLE, retryable", async () => {
    upstream.respond(() => jsonResponse(500, { type: "error", error: { type: "api_error", message: "Internal server error" } }));
    const error = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(error)).toMatchObject({ code: Code.Unavailable, reason: "UPSTREAM_UNAVAILABLE", retryable: true });
  });

  it("a connection reset → UNAVAILABLE UPSTREAM_CONNECTION, for complete and stream", async () => {
    upstream.respond(() => ({ resetBeforeHeaders: true }));
    const unary = await rejection(provider.complete(hello, call()));
    expect(upstreamFacts(unary)).toMatchObject({ code: Code.Unavailable, reason: "UPSTREAM_CONNECTION", retryable: true });
    const streamed = await streamFailure(hello);
    expect(upstreamFacts(streamed.error)).toMatchObject({ code: Code.Unavailable, reason: "UPSTREAM_CONNECTION" });
    expect(streamed.seen).toEqual([]);
  });
});

// ---- cancellation --------------------------------------------------------------------

describe("cancel", () => {
  /** Headers and the first events, then silence: the stream stays open until someone leaves. */
  function stalledStream() {
    const transcript = sseTranscript("sse/ts_basic_text.sse");
    return sseResponse([transcript.slice(0, transcript.indexOf("event: content_block_delta"))], { stallAfterChunks: true });
  }

  it("aborting the caller's signal mid-stream closes the upstream request at once", async () => {
    upstream.respond(stalledStream);
    const controller = new AbortController();
    const iterator = provider.stream(hello, call({ signal: controller.signal }))[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value?.event.case).toBe("start");
    const aborted = upstream.nextAbort();
    controller.abort();
    const error = await rejection(iterator.next());
    expect(error.code).toBe(Code.Canceled);
    expect((await aborted).path).toBe("/v1/messages");
  });

  it("a consumer that stops iterating early closes the upstream request", async () => {
    upstream.respond(stalledStream);
    const aborted = upstream.nextAbort();
    for await (const event of provider.stream(hello, call())) {
      expect(event.event.case).toBe("start");
      break;
    }
    expect((await aborted).path).toBe("/v1/messages");
  });

  it("aborting while a unary body is being read closes the upstream request", async () => {
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    upstream.respond(() => {
      arrived();
      return { status: 200, headers: { "content-type": "application/json" }, chunks: ['{"id":"msg_'], stallAfterChunks: true };
    });
    const controller = new AbortController();
    const pending = provider.complete(hello, call({ signal: controller.signal }));
    await requestArrived;
    const aborted = upstream.nextAbort();
    controller.abort();
    expect((await rejection(pending)).code).toBe(Code.Canceled);
    await aborted;
  });

  it("an already-aborted call sends nothing", async () => {
    const before = upstream.requests.length;
    const error = await rejection(provider.complete(hello, call({ signal: AbortSignal.abort() })));
    expect(error.code).toBe(Code.Canceled);
    expect(upstream.requests.length).toBe(before);
  });
});
