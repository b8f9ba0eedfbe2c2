import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { CompleteRequestSchema, type StreamCompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role } from "../../../../gen/sluice/v1/chat_pb.js";
import { configSchema, type OpenAIProviderConfig } from "../../../../src/config/schema.js";
import type { Provider } from "../../../../src/providers/provider.js";
import { createOpenAIProvider } from "../../../../src/providers/openai/openai-provider.js";
import { jsonResponse, splitEvery, sseResponse, startFakeUpstream, type FakeUpstream } from "../../../helpers/fake-upstream.js";
import { nonstreamRecordings, readSseFixture, sseFixtureNames } from "../../../fixtures/providers/openai/fixtures.js";

// Every recorded OpenAI answer (test/fixtures/providers/openai, SOURCES.md) replayed over
// real HTTP on loopback through the adapter, whole and cut into small pieces.

interface ExpectedStream {
  id: string;
  text: string;
  toolCalls?: Array<{ id: string; name: string; arguments: string }>;
  usage: [input: number, output: number];
  finish: FinishReason;
}

// Read off the recordings by hand (a refusal's text is its `delta.refusal` fragments).
const expectedStreams: Record<string, ExpectedStream> = {
  "node_content_logprobs_usage.sse": {
    id: "chatcmpl-9tZXFsqeQOozn5YU8I6SbjkmDnN76",
    text: '{"city":"San Francisco","units":"f"}',
    usage: [17, 10],
    finish: FinishReason.STOP,
  },
  "node_leading_newline_usage.sse": {
    id: "chatcmpl-9tZXEmwtoDf6vqCqEWSvDP8jx9OXe",
    text: '\n\n{"city":"San Francisco","units":"c"}',
    usage: [17, 10],
    finish: FinishReason.STOP,
  },
  "node_refusal_logprobs_usage.sse": {
    id: "chatcmpl-9tZXGacdbmJYO8K50haE4OauaJmPn",
    text: "I'm very sorry, but I can't assist with that request.",
    usage: [17, 13],
    finish: FinishReason.REFUSAL,
  },
  "node_structured_text_usage.sse": {
    id: "chatcmpl-9tZXEmwtoDf6vqCqEWSvDP8jx9OXe",
    text: '{"city":"San Francisco","units":"c"}',
    usage: [17, 10],
    finish: FinishReason.STOP,
  },
  "py_content_logprobs.sse": {
    id: "chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c",
    text: "Foo!",
    usage: [9, 2],
    finish: FinishReason.STOP,
  },
  "py_finish_length_max_tokens1.sse": {
    id: "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh",
    text: '{"',
    usage: [79, 1],
    finish: FinishReason.LENGTH,
  },
  // n=3: choices 1 and 2 (temperatures 61 and 59) are ignored; only index 0 is the answer.
  "py_n3_multiple_choices_usage.sse": {
    id: "chatcmpl-ABfw2KKFuVXmEJgVwYfBvejMAdWtq",
    text: '{"city":"San Francisco","temperature":65,"units":"f"}',
    usage: [79, 42],
    finish: FinishReason.STOP,
  },
  "py_non_pydantic_response_format.sse": {
    id: "chatcmpl-ABfwCjPMi0ubw56UyMIIeNfJzyogq",
    text: "",
    usage: [19, 177],
    finish: FinishReason.STOP,
  },
  "py_plain_text_usage.sse": {
    id: "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
    text: "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app.",
    usage: [14, 30],
    finish: FinishReason.STOP,
  },
  "py_refusal.sse": {
    id: "chatcmpl-ABfw4IfQfCCrcuybFm41wJyxjbkz7",
    text: "I'm sorry, I can't assist with that request.",
    usage: [79, 11],
    finish: FinishReason.REFUSAL,
  },
  "py_refusal_logprobs.sse": {
    id: "chatcmpl-ABfw5GEVqPbLY576l46FZDQoNJ2KC",
    text: "I'm very sorry, but I can't assist with that.",
    usage: [79, 12],
    finish: FinishReason.REFUSAL,
  },
  "py_structured_json_text_usage.sse": {
    id: "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF",
    text: '{"city":"San Francisco","temperature":61,"units":"f"}',
    usage: [79, 14],
    finish: FinishReason.STOP,
  },
  "py_tool_call_non_strict.sse": {
    id: "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62",
    text: "",
    toolCalls: [{ id: "call_4XzlGBLtUe9dy3GVNV4jhq7h", name: "get_weather", arguments: '{"city":"New York City"}' }],
    usage: [44, 16],
    finish: FinishReason.TOOL_CALLS,
  },
  "py_tool_call_single_strict.sse": {
    id: "chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr",
    text: "",
    toolCalls: [
      {
        id: "call_c91SqDXlYFuETYv8mUHzz6pp",
        name: "GetWeatherArgs",
        arguments: '{"city":"Edinburgh","country":"UK","units":"c"}',
      },
    ],
    usage: [76, 24],
    finish: FinishReason.TOOL_CALLS,
  },
  "py_tool_call_strict_tools.sse": {
    id: "chatcmpl-ABfwCgi41eStOcARjZq97ohCEGBPO",
    text: "",
    toolCalls: [{ id: "call_CTf1nWJLqSeRgDqaCG27xZ74", name: "get_weather", arguments: '{"city":"San Francisco","state":"CA"}' }],
    usage: [48, 19],
    finish: FinishReason.TOOL_CALLS,
  },
  "py_tool_calls_parallel_two.sse": {
    id: "chatcmpl-ABfwAwrNePHUgBBezonVC6MX3zd63",
    text: "",
    toolCalls: [
      {
        id: "call_JMW1whyEaYG438VE1OIflxA2",
        name: "GetWeatherArgs",
        arguments: '{"city": "Edinburgh", "country": "GB", "units": "c"}',
      },
      { id: "call_DNYTawLBoN8fj3KN6qU9N1Ou", name: "get_stock_price", arguments: '{"ticker": "AAPL", "exchange": "NASDAQ"}' },
    ],
    usage: [149, 60],
    finish: FinishReason.TOOL_CALLS,
  },
};

/**
 * The answer's text as the recording has it: choice 0's content and refusal fragments,
 * joined. Deliberately naive (split on blank lines, JSON.parse each `data:`): it is the
 * oracle for the long transcript whose text is not spelled out above.
 */
function recordedText(transcript: string): string {
  let text = "";
  for (const block of transcript.split("\n\n")) {
    if (!block.startsWith("data: ") || block === "data: [DONE]") continue;
    for (const choice of (
      JSON.parse(block.slice(6)) as {
        choices: Array<{ index: number; delta: { content?: string | null; refusal?: string | null } }>;
      }
    ).choices) {
      if (choice.index === 0) text += (choice.delta.content ?? "") + (choice.delta.refusal ?? "");
    }
  }
  return text;
}

/** Cuts at seeded pseudo-random sizes from 1 to `max` bytes (mulberry32): reproducible, yet anywhere. */
function splitRandom(text: string, seed: number, max: number): Uint8Array[] {
  const bytes = Buffer.from(text, "utf8");
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; ) {
    const size = 1 + Math.floor(next() * max);
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

const chunkings: Array<[string, (text: string) => Array<string | Uint8Array>]> = [
  ["whole", (text) => [text]],
  ["1-byte", (text) => splitEvery(text, 1)],
  ["7-byte", (text) => splitEvery(text, 7)],
  ["64-byte", (text) => splitEvery(text, 64)],
  ["seeded 1..13-byte", (text) => splitRandom(text, 20_241_122, 13)],
];

let fake: FakeUpstream;
let provider: Provider;

beforeAll(async () => {
  fake = await startFakeUpstream();
  const config = configSchema.parse({
    providers: { oai: { type: "openai", baseUrl: `${fake.origin}/v1`, apiKey: "sk-test-replay-0000" } },
    models: {},
  }).providers["oai"] as OpenAIProviderConfig;
  provider = createOpenAIProvider("oai", config);
});
afterAll(async () => {
  await provider.close();
  await fake.close();
});

const request = create(CompleteRequestSchema, {
  model: "alias",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "What's the weather in SF?" } }] }],
});

async function collect(chunks: Array<string | Uint8Array>): Promise<StreamCompleteResponse[]> {
  fake.respond(() => sseResponse(chunks));
  const events: StreamCompleteResponse[] = [];
  for await (const event of provider.stream(request, { model: "gpt-4o", signal: new AbortController().signal }))
    events.push(event);
  return events;
}

describe("OpenAI stream recordings replayed over HTTP", () => {
  it("has an expectation for every recorded transcript", () => {
    expect(Object.keys(expectedStreams).sort()).toEqual([...sseFixtureNames]);
  });

  for (const name of sseFixtureNames) {
    it(name, async () => {
      const transcript = readSseFixture(name);
      const expected = expectedStreams[name]!;
      const text = expected.text === "" && expected.toolCalls === undefined ? recordedText(transcript) : expected.text;
      expect(text).toBe(recordedText(transcript));

      let reference: StreamCompleteResponse[] | undefined;
      for (const [label, cut] of chunkings) {
        const events = await collect(cut(transcript));
        const kinds = events.map((e) => e.event.case);
        // Exactly one start, first; exactly one done, last; only fragments between.
        expect(kinds[0], label).toBe("start");
        expect(kinds.at(-1), label).toBe("done");
        expect(
          kinds.filter((k) => k === "start" || k === "done"),
          label,
        ).toEqual(["start", "done"]);

        const first = events[0]!.event;
        expect(first.case === "start" && { ...first.value }, label).toEqual({
          $typeName: "sluice.v1.StreamStart",
          id: expected.id,
          model: "gpt-4o-2024-08-06",
          provider: "oai",
        });

        const deltas = events.flatMap((e) => (e.event.case === "delta" ? [e.event.value.text] : []));
        expect(
          deltas.every((d) => d !== ""),
          `${label}: no empty deltas`,
        ).toBe(true);
        expect(deltas.join(""), label).toBe(text);

        const calls: Array<{ id: string; name: string; arguments: string }> = [];
        for (const e of events) {
          if (e.event.case !== "toolCallDelta") continue;
          const { index, id, name: toolName, arguments: args } = e.event.value;
          if (calls[index] === undefined) {
            // The first fragment of each call names it; later ones carry arguments only.
            expect(id !== "" && toolName !== "", `${label}: first fragment of call ${index}`).toBe(true);
            calls[index] = { id, name: toolName, arguments: args };
          } else {
            expect([id, toolName], `${label}: later fragment of call ${index}`).toEqual(["", ""]);
            calls[index]!.arguments += args;
          }
        }
        expect(calls, label).toEqual(expected.toolCalls ?? []);

        const last = events.at(-1)!.event;
        expect(last.case === "done" && last.value.finishReason, label).toBe(expected.finish);
        expect(
          last.case === "done" && last.value.usage && [last.value.usage.inputTokens, last.value.usage.outputTokens],
          label,
        ).toEqual(expected.usage);

        // However the bytes were cut, the events are the same.
        if (reference === undefined) reference = events;
        else expect(events, label).toEqual(reference);
      }
    });
  }

  it("py_finish_length_max_tokens1.sse yields exactly start, one delta, done", async () => {
    const events = await collect([readSseFixture("py_finish_length_max_tokens1.sse")]);
    expect(events.map((e) => [e.event.case, { ...e.event.value, $typeName: undefined }])).toEqual([
      [
        "start",
        { $typeName: undefined, id: "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh", model: "gpt-4o-2024-08-06", provider: "oai" },
      ],
      ["delta", { $typeName: undefined, text: '{"' }],
      [
        "done",
        {
          $typeName: undefined,
          finishReason: FinishReason.LENGTH,
          usage: expect.objectContaining({ inputTokens: 79, outputTokens: 1, cachedInputTokens: 0, reasoningTokens: 0 }),
        },
      ],
    ]);
  });

  it("py_tool_call_non_strict.sse yields exactly start, the tool-call fragments, done", async () => {
    const events = await collect([readSseFixture("py_tool_call_non_strict.sse")]);
    const compact = events.map((e) =>
      e.event.case === "toolCallDelta"
        ? [e.event.value.index, e.event.value.id, e.event.value.name, e.event.value.arguments]
        : e.event.case,
    );
    expect(compact).toEqual([
      "start",
      [0, "call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", ""],
      [0, "", "", '{"'],
      [0, "", "", "city"],
      [0, "", "", '":"'],
      [0, "", "", "New"],
      [0, "", "", " York"],
      [0, "", "", " City"],
      [0, "", "", '"}'],
      "done",
    ]);
  });
});

describe("OpenAI non-streaming recordings replayed over HTTP", () => {
  const recordings = nonstreamRecordings();

  it("covers all 20 recorded bodies", () => {
    expect(Object.keys(recordings)).toHaveLength(20);
  });

  for (const [key, body] of Object.entries(recordings)) {
    it(key, async () => {
      fake.respond(() => jsonResponse(200, body));
      const response = await provider.complete(request, { model: "gpt-4o", signal: new AbortController().signal });

      const recorded = body as {
        id: string;
        model: string;
        choices: Array<{
          index: number;
          finish_reason: string;
          message: {
            content: string | null;
            refusal: string | null;
            tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
          };
        }>;
        usage: { prompt_tokens: number; completion_tokens: number; completion_tokens_details?: { reasoning_tokens: number } };
      };
      const choice = recorded.choices.find((c) => c.index === 0)!;
      expect(response.id).toBe(recorded.id);
      expect(response.model).toBe(recorded.model);
      expect(response.provider).toBe("oai");
      expect(response.message!.role).toBe(Role.ASSISTANT);
      const text = response.message!.content.map((p) => (p.part.case === "text" ? p.part.value : "")).join("");
      expect(text).toBe(choice.message.content ?? choice.message.refusal ?? "");
      expect(response.message!.toolCalls.map(({ id, name, arguments: args }) => ({ id, name, args }))).toEqual(
        (choice.message.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, args: c.function.arguments })),
      );
      const finish =
        choice.message.refusal !== null
          ? FinishReason.REFUSAL
          : (
              { stop: FinishReason.STOP, length: FinishReason.LENGTH, tool_calls: FinishReason.TOOL_CALLS } as Record<
                string,
                FinishReason
              >
            )[choice.finish_reason];
      expect(response.finishReason).toBe(finish);
      expect(response.usage).toMatchObject({
        inputTokens: recorded.usage.prompt_tokens,
        outputTokens: recorded.usage.completion_tokens,
        reasoningTokens: recorded.usage.completion_tokens_details?.reasoning_tokens ?? 0,
        cachedInputTokens: 0,
      });
    });
  }

  it("reads only choice 0 of the n=3 recording, and the refusal recording as a refusal", async () => {
    const multi = recordings["py_chat_completions_recorded.json: test_parse_pydantic_model_multiple_choices"];
    fake.respond(() => jsonResponse(200, multi));
    const response = await provider.complete(request, { model: "gpt-4o", signal: new AbortController().signal });
    expect(response.message!.content.map((p) => p.part.value)).toEqual(['{"city":"San Francisco","temperature":64,"units":"f"}']);

    fake.respond(() => jsonResponse(200, recordings["py_chat_completions_recorded.json: test_parse_pydantic_model_refusal"]));
    const refusal = await provider.complete(request, { model: "gpt-4o", signal: new AbortController().signal });
    expect(refusal.finishReason).toBe(FinishReason.REFUSAL);
    expect(refusal.message!.content.map((p) => p.part.value)).toEqual(["I'm very sorry, but I can't assist with that."]);
  });
});
