import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { jsonResponse, splitEvery, sseResponse, type RecordedRequest } from "../helpers/fake-upstream.js";
import {
  callerProtocols,
  compactEvents,
  createChatCaller,
  errorFacts,
  postCompleteJson,
  responseSummary,
  within,
  type ChatCaller,
  type CompactEvent,
  type CompleteRequestFields,
  type CompleteRequestInit,
} from "../helpers/chat-callers.js";
import {
  anthropicAlias,
  anthropicDefaultMaxTokens,
  anthropicProviderName,
  anthropicTestKey,
  anthropicUpstreamModel,
  startProviderGateway,
  type ProviderGateway,
} from "../helpers/provider-gateway.js";
import { nockRecordings, recordedErrors, sseTranscript } from "../fixtures/providers/anthropic/fixtures.js";

// Sluice in front of a fake Anthropic that replays recorded traffic (test/fixtures/providers/
// anthropic, SOURCES.md), each scenario over Connect JSON (HTTP/1.1) and gRPC (grpc-js, h2c):
// what the caller receives, and what reached the provider.

let gateway: ProviderGateway;
beforeAll(async () => {
  gateway = await startProviderGateway();
});
afterAll(async () => {
  await gateway?.close();
});

const text = (value: string) => ({ part: { case: "text" as const, value } });

let sequence = 0;
/** A prompt no other request in this file sends, so the fake's record of this call can be found. */
const uniquePrompt = (what: string): string => `${what} (#${++sequence})`;
/** Whether the fake's request carries `prompt` (as it appears inside the JSON body). */
const sentWith = (request: RecordedRequest, prompt: string): boolean =>
  request.bodyText.includes(JSON.stringify(prompt).slice(1, -1));

function ask(prompt: string, extra: Partial<CompleteRequestFields> = {}): CompleteRequestInit {
  return { model: anthropicAlias, messages: [{ role: Role.USER, content: [text(prompt)] }], ...extra };
}

/** Every request the fake Anthropic received carrying `prompt`. */
const received = (prompt: string): RecordedRequest[] => gateway.anthropic.requests.filter((r) => sentWith(r, prompt));

const toolStream = sseTranscript("sse/ts_tool_use.sse");

/** ts_tool_use.sse as the caller must see it (the empty first input_json_delta yields nothing). */
const expectedToolStream: CompactEvent[] = [
  ["start", "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514", anthropicProviderName],
  ["text", "I"],
  ["text", "'ll check the current weather in Paris for you."],
  ["tool", 0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", ""],
  ["args", 0, '{"locati'],
  ["args", 0, 'on": "P'],
  ["args", 0, "ar"],
  ["args", 0, 'is"}'],
  ["done", FinishReason.TOOL_CALLS, { input: 377, output: 65, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
];

/** The transcript up to the start of the event whose text contains `marker`. */
function eventsBefore(transcript: string, marker: string): string {
  const at = transcript.indexOf(marker);
  if (at < 0) throw new Error(`no ${marker} in the transcript`);
  return transcript.slice(0, transcript.lastIndexOf("event: ", at));
}
/** Through the first non-empty argument fragment: stream events start, two texts, the call, "{\"locati". */
const throughFirstArgs = eventsBefore(toolStream, '"partial_json":"on');
const firstArgsEventCount = 5;

const streamIncomplete = {
  code: Code.Unavailable,
  errorInfo: [{ reason: "UPSTREAM_STREAM_INCOMPLETE", domain: "sluice", metadata: { provider: anthropicProviderName } }],
  retryDelayMs: [],
  fieldViolations: [],
};

describe.each(callerProtocols)("Anthropic provider over %s", (protocol) => {
  let caller: ChatCaller;
  beforeAll(() => {
    caller = createChatCaller(protocol, gateway.sluice.url);
  });
  afterAll(() => caller.close());

  it("Complete replays a recorded tool_use message; the provider got the translated request", async () => {
    const recording = nockRecordings()[0]!;
    gateway.anthropic.respond(() => jsonResponse(200, recording.response));
    const prompt = uniquePrompt('Use the test_tool with value "test", then provide a final response');
    const parameters = {
      type: "object",
      properties: { value: { type: "string" } },
      required: ["value"],
      additionalProperties: false,
    };
    const response = await caller.complete({
      model: anthropicAlias,
      messages: [
        { role: Role.SYSTEM, content: [text("Be brief.")] },
        { role: Role.USER, content: [text(prompt)] },
      ],
      tools: [{ name: "test_tool", description: "A test tool", parameters }],
      maxOutputTokens: 1000,
    });
    expect(responseSummary(response)).toEqual({
      id: "msg_012foMGXNQ1eqhaq3QvA5dY6",
      model: "claude-sonnet-4-20250514",
      provider: anthropicProviderName,
      role: Role.ASSISTANT,
      content: ['I\'ll use the test_tool with the value "test" as requested, then provide a final response.'],
      toolCalls: [{ id: "toolu_011LF2VkWpAfJnTKJcmh1PNf", name: "test_tool", arguments: '{"value":"test"}' }],
      reasoning: "",
      finishReason: FinishReason.TOOL_CALLS,
      usage: { input: 415, output: 76, cachedInput: 0, cacheWrite: 0, reasoning: 0 },
    });

    const [sent, ...more] = received(prompt);
    expect(more).toEqual([]);
    expect(sent!.method).toBe("POST");
    expect(sent!.path).toBe("/v1/messages");
    expect(sent!.headers["x-api-key"]).toBe(anthropicTestKey);
    expect(sent!.headers["anthropic-version"]).toBe("2023-06-01");
    expect(sent!.headers["authorization"]).toBeUndefined();
    expect(sent!.body).toEqual({
      model: anthropicUpstreamModel,
      max_tokens: 1000,
      system: "Be brief.",
      messages: [{ role: "user", content: prompt }],
      tools: [{ name: "test_tool", description: "A test tool", input_schema: parameters }],
      stream: false,
    });
  });

  it("StreamComplete replays a recorded tool_use stream cut into 5-byte TCP writes", async () => {
    gateway.anthropic.respond(() => sseResponse(splitEvery(toolStream, 5)));
    const prompt = uniquePrompt("What's the weather in Paris?");
    const { events, error } = await caller.stream(ask(prompt));
    expect(error).toBeUndefined();
    expect(compactEvents(events)).toEqual(expectedToolStream);

    const [sent] = received(prompt);
    expect(sent!.path).toBe("/v1/messages");
    expect(sent!.headers["x-api-key"]).toBe(anthropicTestKey);
    // No max_output_tokens in the request: the deployment's maxOutputTokens is sent.
    expect(sent!.body).toEqual({
      model: anthropicUpstreamModel,
      max_tokens: anthropicDefaultMaxTokens,
      messages: [{ role: "user", content: prompt }],
      stream: true,
    });
  });

  it("529 overloaded with x-should-retry: true (recorded) → UNAVAILABLE UPSTREAM_OVERLOADED (HTTP 503)", async () => {
    const { status, headers, body } = recordedErrors().s3_overloaded_529;
    gateway.anthropic.respond(() => jsonResponse(status, body, headers));
    const prompt = uniquePrompt("overloaded");
    const facts = {
      code: Code.Unavailable,
      errorInfo: [
        {
          reason: "UPSTREAM_OVERLOADED",
          domain: "sluice",
          metadata: { provider: anthropicProviderName, upstream_status: "529" },
        },
      ],
      retryDelayMs: [],
      fieldViolations: [],
    };
    const unary = await caller.completeError(ask(prompt));
    expect(errorFacts(unary)).toEqual(facts);
    expect(unary.rawMessage).toBe("provider claude answered 529: Overloaded");
    const streamed = await caller.stream(ask(prompt));
    expect(streamed.events).toEqual([]);
    expect(errorFacts(streamed.error!)).toEqual(facts);
    if (protocol === "connect-json-h1") {
      const raw = await postCompleteJson(gateway.sluice.url, ask(prompt));
      expect(raw.status).toBe(503);
      expect(errorFacts(raw.error!)).toEqual(facts);
    }
  });

  it("a stream that ends without message_stop fails UNAVAILABLE after every event but done", async () => {
    gateway.anthropic.respond(() => sseResponse(splitEvery(eventsBefore(toolStream, "event: message_stop"), 5)));
    const { events, error } = await caller.stream(ask(uniquePrompt("cut before message_stop")));
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, -1));
    expect(errorFacts(error!)).toEqual(streamIncomplete);
  });

  it("a connection reset mid-stream fails UNAVAILABLE after the events already sent", async () => {
    gateway.anthropic.respond(() => sseResponse(splitEvery(throughFirstArgs, 5), { stallAfterChunks: true }));
    const { events, error } = await caller.stream(ask(uniquePrompt("reset mid-stream")), {
      onEvent: (_event, seen) => {
        if (seen.length === firstArgsEventCount) gateway.anthropic.resetConnections();
      },
    });
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, firstArgsEventCount));
    expect(errorFacts(error!)).toEqual(streamIncomplete);
  });

  it("event: error overloaded mid-stream → UNAVAILABLE after the events already sent", async () => {
    const errorEvent = sseTranscript("sse/docs/docs_error_event_overloaded.sse");
    const rest = toolStream.slice(throughFirstArgs.length);
    gateway.anthropic.respond(() => sseResponse(splitEvery(throughFirstArgs + errorEvent + rest, 5)));
    const { events, error } = await caller.stream(ask(uniquePrompt("overloaded mid-stream")));
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, firstArgsEventCount));
    expect(errorFacts(error!)).toEqual({
      code: Code.Unavailable,
      errorInfo: [{ reason: "UPSTREAM_OVERLOADED", domain: "sluice", metadata: { provider: anthropicProviderName } }],
      retryDelayMs: [],
      fieldViolations: [],
    });
    expect(error!.rawMessage).toBe("provider claude stream failed with overloaded_error: Overloaded");
  });

  it("a client cancel mid-stream closes the upstream request at once: CANCELLED", async () => {
    gateway.anthropic.respond(() => sseResponse([throughFirstArgs], { stallAfterChunks: true }));
    const prompt = uniquePrompt("cancel me");
    const aborted = gateway.anthropic.abortOf((r) => sentWith(r, prompt));
    const { events, error } = await caller.stream(ask(prompt), { cancelWhen: (_event, seen) => seen.length === 2 });
    expect(error?.code).toBe(Code.Canceled);
    expect(compactEvents(events).slice(0, 2)).toEqual(expectedToolStream.slice(0, 2));
    expect(events.some((e) => e.event.case === "done")).toBe(false);
    expect((await within(aborted, 2_000, "the upstream request closed")).path).toBe("/v1/messages");
  });

  it("a caller deadline shorter than a stalled stream: DEADLINE_EXCEEDED, and the upstream request is closed", async () => {
    gateway.anthropic.respond(() => sseResponse([throughFirstArgs], { stallAfterChunks: true }));
    const prompt = uniquePrompt("deadline");
    const aborted = gateway.anthropic.abortOf((r) => sentWith(r, prompt));
    const { events, error } = await caller.stream(ask(prompt), { timeoutMs: 500 });
    expect(error?.code).toBe(Code.DeadlineExceeded);
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, firstArgsEventCount));
    expect((await within(aborted, 2_000, "the upstream request closed")).path).toBe("/v1/messages");
  });

  it("seed, which Anthropic lacks: INVALID_ARGUMENT naming field and provider, and nothing is sent", async () => {
    const sentBefore = gateway.anthropic.requests.length;
    const request = ask(uniquePrompt("seed"), { seed: 42n });
    const facts = {
      code: Code.InvalidArgument,
      errorInfo: [{ reason: "UNSUPPORTED_BY_PROVIDER", domain: "sluice", metadata: {} }],
      retryDelayMs: [],
      fieldViolations: [
        { field: "seed", description: "seed is not supported by provider claude (Anthropic)", reason: "UNSUPPORTED_BY_PROVIDER" },
      ],
    };
    const unary = await caller.completeError(request);
    expect(errorFacts(unary)).toEqual(facts);
    expect(unary.rawMessage).toBe("seed: seed is not supported by provider claude (Anthropic)");
    const streamed = await caller.stream(request);
    expect(streamed.events).toEqual([]);
    expect(errorFacts(streamed.error!)).toEqual(facts);
    if (protocol === "connect-json-h1") expect((await postCompleteJson(gateway.sluice.url, request)).status).toBe(400);
    expect(gateway.anthropic.requests.length).toBe(sentBefore);
  });
});
