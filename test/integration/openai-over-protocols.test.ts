import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, Role, ToolChoiceMode } from "../../gen/sluice/v1/chat_pb.js";
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
  openaiAlias,
  openaiProviderName,
  openaiTestKey,
  openaiUpstreamModel,
  startProviderGateway,
  type ProviderGateway,
} from "../helpers/provider-gateway.js";
import { capturedErrorBodies, nonstreamRecordings, readSseFixture } from "../fixtures/providers/openai/fixtures.js";

// Sluice in front of a fake OpenAI that replays recorded traffic (test/fixtures/providers/
// openai, SOURCES.md), each scenario over Connect JSON (HTTP/1.1) and gRPC (grpc-js, h2c):
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
  return { model: openaiAlias, messages: [{ role: Role.USER, content: [text(prompt)] }], ...extra };
}

/** Every request the fake OpenAI received carrying `prompt`. */
const received = (prompt: string): RecordedRequest[] => gateway.openai.requests.filter((r) => sentWith(r, prompt));

const recordings = nonstreamRecordings();
const toolStream = readSseFixture("py_tool_call_non_strict.sse");

/** py_tool_call_non_strict.sse as the caller must see it, read off the recording. */
const expectedToolStream: CompactEvent[] = [
  ["start", "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62", "gpt-4o-2024-08-06", openaiProviderName],
  ["tool", 0, "call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", ""],
  ["args", 0, '{"'],
  ["args", 0, "city"],
  ["args", 0, '":"'],
  ["args", 0, "New"],
  ["args", 0, " York"],
  ["args", 0, " City"],
  ["args", 0, '"}'],
  ["done", FinishReason.TOOL_CALLS, { input: 44, output: 16, cachedInput: 0, cacheWrite: 0, reasoning: 0 }],
];

/** The recording's first `n` `data:` events (each with its blank line), for a stream that then stalls. */
function firstEvents(transcript: string, n: number): string {
  let at = 0;
  for (let i = 0; i < n; i++) at = transcript.indexOf("data: ", at) + 1;
  return transcript.slice(0, transcript.indexOf("data: ", at));
}

const streamIncomplete = {
  code: Code.Unavailable,
  errorInfo: [{ reason: "UPSTREAM_STREAM_INCOMPLETE", domain: "sluice", metadata: { provider: openaiProviderName } }],
  retryDelayMs: [],
  fieldViolations: [],
};

describe.each(callerProtocols)("OpenAI provider over %s", (protocol) => {
  let caller: ChatCaller;
  beforeAll(() => {
    caller = createChatCaller(protocol, gateway.sluice.url);
  });
  afterAll(() => caller.close());

  it("Complete replays a recorded text completion; the provider got the translated request", async () => {
    gateway.openai.respond(() => jsonResponse(200, recordings["py_chat_completions_recorded.json: test_parse_nothing"]));
    const prompt = uniquePrompt("What's the weather in SF?");
    const response = await caller.complete({
      model: openaiAlias,
      messages: [
        { role: Role.SYSTEM, content: [text("Be brief.")] },
        { role: Role.USER, content: [text(prompt)] },
      ],
      temperature: 0.25,
      maxOutputTokens: 100,
    });
    expect(responseSummary(response)).toEqual({
      id: "chatcmpl-ABfvaueLEMLNYbT8YzpJxsmiQ6HSY",
      model: "gpt-4o-2024-08-06",
      provider: openaiProviderName,
      role: Role.ASSISTANT,
      content: [
        "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or app like the Weather Channel or a local news station.",
      ],
      toolCalls: [],
      reasoning: "",
      finishReason: FinishReason.STOP,
      usage: { input: 14, output: 37, cachedInput: 0, cacheWrite: 0, reasoning: 0 },
    });

    const [sent, ...more] = received(prompt);
    expect(more).toEqual([]);
    expect(sent!.method).toBe("POST");
    expect(sent!.path).toBe("/v1/chat/completions");
    expect(sent!.headers["authorization"]).toBe(`Bearer ${openaiTestKey}`);
    expect(sent!.headers["content-type"]).toBe("application/json");
    expect(sent!.body).toEqual({
      model: openaiUpstreamModel,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: prompt },
      ],
      temperature: 0.25,
      max_completion_tokens: 100,
    });
  });

  it("Complete replays recorded parallel tool calls: ids, names and arguments exactly", async () => {
    gateway.openai.respond(() =>
      jsonResponse(200, recordings["py_chat_completions_recorded.json: test_parse_multiple_pydantic_tools"]),
    );
    const prompt = uniquePrompt("Weather in Edinburgh and the AAPL price?");
    const weatherSchema = {
      type: "object",
      properties: { city: { type: "string" }, country: { type: "string" } },
      required: ["city"],
    };
    const response = await caller.complete(
      ask(prompt, {
        tools: [
          { name: "GetWeatherArgs", description: "Weather for a city", parameters: weatherSchema },
          { name: "get_stock_price", parameters: { type: "object", properties: { ticker: { type: "string" } } } },
        ],
        toolChoice: { choice: { case: "mode", value: ToolChoiceMode.AUTO } },
      }),
    );
    expect(responseSummary(response)).toEqual({
      id: "chatcmpl-ABfvyvfNWKcl7Ohqos4UFrmMs1v4C",
      model: "gpt-4o-2024-08-06",
      provider: openaiProviderName,
      role: Role.ASSISTANT,
      content: [],
      toolCalls: [
        {
          id: "call_fdNz3vOBKYgOIpMdWotB9MjY",
          name: "GetWeatherArgs",
          arguments: '{"city": "Edinburgh", "country": "GB", "units": "c"}',
        },
        { id: "call_h1DWI1POMJLb0KwIyQHWXD4p", name: "get_stock_price", arguments: '{"ticker": "AAPL", "exchange": "NASDAQ"}' },
      ],
      reasoning: "",
      finishReason: FinishReason.TOOL_CALLS,
      usage: { input: 149, output: 60, cachedInput: 0, cacheWrite: 0, reasoning: 0 },
    });
    const [sent] = received(prompt);
    expect(sent!.body).toMatchObject({
      model: openaiUpstreamModel,
      tools: [
        { type: "function", function: { name: "GetWeatherArgs", description: "Weather for a city", parameters: weatherSchema } },
        {
          type: "function",
          function: { name: "get_stock_price", parameters: { type: "object", properties: { ticker: { type: "string" } } } },
        },
      ],
      tool_choice: "auto",
    });
  });

  it("StreamComplete replays a recorded tool-call stream cut into 7-byte TCP writes", async () => {
    gateway.openai.respond(() => sseResponse(splitEvery(toolStream, 7)));
    const prompt = uniquePrompt("What's the weather in New York City?");
    const { events, error } = await caller.stream(ask(prompt));
    expect(error).toBeUndefined();
    expect(compactEvents(events)).toEqual(expectedToolStream);

    const [sent] = received(prompt);
    expect(sent!.path).toBe("/v1/chat/completions");
    expect(sent!.headers["authorization"]).toBe(`Bearer ${openaiTestKey}`);
    expect(sent!.headers["accept"]).toBe("text/event-stream");
    expect(sent!.body).toEqual({
      model: openaiUpstreamModel,
      messages: [{ role: "user", content: prompt }],
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  describe("upstream errors reach the caller as codes with details", () => {
    const cases = [
      {
        name: "429 rate_limit_exceeded with retry-after: 7 → RESOURCE_EXHAUSTED + RetryInfo 7 s",
        reply: jsonResponse(429, capturedErrorBodies.rate_limit_exceeded_429, { "retry-after": "7" }),
        httpStatus: 429,
        facts: {
          code: Code.ResourceExhausted,
          errorInfo: [
            {
              reason: "UPSTREAM_RATE_LIMITED",
              domain: "sluice",
              metadata: { provider: openaiProviderName, upstream_status: "429" },
            },
          ],
          retryDelayMs: [7_000],
          fieldViolations: [],
        },
        message: "provider oai answered 429: Rate limit reached for gpt-4 in organization ***** on tokens per min.",
      },
      {
        name: "401 invalid_api_key (recorded, echoes a masked key) → INTERNAL UPSTREAM_AUTH, the key text withheld",
        reply: jsonResponse(401, capturedErrorBodies.invalid_api_key_401),
        httpStatus: 500,
        facts: {
          code: Code.Internal,
          errorInfo: [
            { reason: "UPSTREAM_AUTH", domain: "sluice", metadata: { provider: openaiProviderName, upstream_status: "401" } },
          ],
          retryDelayMs: [],
          fieldViolations: [],
        },
        message: "provider oai answered 401: the gateway's credentials for oai were refused",
      },
      {
        name: "400 context_length_exceeded → INVALID_ARGUMENT CONTEXT_LENGTH_EXCEEDED with the provider's explanation",
        reply: jsonResponse(400, capturedErrorBodies.context_length_exceeded_400),
        httpStatus: 400,
        facts: {
          code: Code.InvalidArgument,
          errorInfo: [
            {
              reason: "CONTEXT_LENGTH_EXCEEDED",
              domain: "sluice",
              metadata: { provider: openaiProviderName, upstream_status: "400" },
            },
          ],
          retryDelayMs: [],
          fieldViolations: [],
        },
        message: "provider oai answered 400: This model's maximum context length is 4097 tokens.",
      },
    ];

    /** Every fragment of the 401 body's key text; none may reach a caller. */
    const keyFragments = ["sk-VKMIs", "VKMIs", "*****wjh3", "wjh3", "Incorrect API key", openaiTestKey];

    for (const { name, reply, httpStatus, facts, message } of cases)
      it(name, async () => {
        gateway.openai.respond(() => reply);
        const prompt = uniquePrompt("an error case");

        const unary = await caller.completeError(ask(prompt));
        expect(errorFacts(unary)).toEqual(facts);
        expect(unary.rawMessage.startsWith(message)).toBe(true);

        const streamed = await caller.stream(ask(prompt));
        expect(streamed.events).toEqual([]);
        expect(errorFacts(streamed.error!)).toEqual(facts);

        const texts = [
          unary.rawMessage,
          streamed.error!.rawMessage,
          JSON.stringify(unary.details),
          JSON.stringify(errorFacts(unary)),
        ];
        if (protocol === "connect-json-h1") {
          const raw = await postCompleteJson(gateway.sluice.url, ask(prompt));
          expect(raw.status).toBe(httpStatus);
          expect(errorFacts(raw.error!)).toEqual(facts);
          texts.push(raw.bodyText);
        }
        if (facts.errorInfo[0]!.reason === "UPSTREAM_AUTH") {
          for (const t of texts) for (const fragment of keyFragments) expect(t).not.toContain(fragment);
        }
        expect(received(prompt).length).toBe(protocol === "connect-json-h1" ? 3 : 2);
      });
  });

  it("a stream that ends without [DONE] fails UNAVAILABLE after every event but done", async () => {
    const cut = toolStream.slice(0, toolStream.indexOf("data: [DONE]"));
    gateway.openai.respond(() => sseResponse(splitEvery(cut, 7)));
    const { events, error } = await caller.stream(ask(uniquePrompt("cut before [DONE]")));
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, -1));
    expect(errorFacts(error!)).toEqual(streamIncomplete);
  });

  it("a connection reset mid-stream fails UNAVAILABLE after the events already sent", async () => {
    // Three data events (four stream events: start, the call's first fragment, two argument
    // fragments), then the stream stalls; once the caller has all four, the fake resets.
    gateway.openai.respond(() => sseResponse(splitEvery(firstEvents(toolStream, 3), 7), { stallAfterChunks: true }));
    const { events, error } = await caller.stream(ask(uniquePrompt("reset mid-stream")), {
      onEvent: (_event, seen) => {
        if (seen.length === 4) gateway.openai.resetConnections();
      },
    });
    expect(compactEvents(events)).toEqual(expectedToolStream.slice(0, 4));
    expect(errorFacts(error!)).toEqual(streamIncomplete);
  });

  it("a client cancel mid-stream closes the upstream request at once: CANCELLED", async () => {
    gateway.openai.respond(() => sseResponse([firstEvents(toolStream, 3)], { stallAfterChunks: true }));
    const prompt = uniquePrompt("cancel me");
    const aborted = gateway.openai.abortOf((r) => sentWith(r, prompt));
    const { events, error } = await caller.stream(ask(prompt), { cancelWhen: (_event, seen) => seen.length === 2 });
    expect(error?.code).toBe(Code.Canceled);
    expect(compactEvents(events).slice(0, 2)).toEqual(expectedToolStream.slice(0, 2));
    expect(events.some((e) => e.event.case === "done")).toBe(false);
    expect((await within(aborted, 2_000, "the upstream request closed")).path).toBe("/v1/chat/completions");
  });

  it("a caller deadline shorter than a stalled upstream: DEADLINE_EXCEEDED, and the upstream request is closed", async () => {
    // Headers and the first bytes of the body, then nothing: only the deadline can end it.
    gateway.openai.respond(() => ({
      status: 200,
      headers: { "content-type": "application/json" },
      chunks: ['{"id":"chatcmpl-'],
      stallAfterChunks: true,
    }));
    const prompt = uniquePrompt("deadline");
    const aborted = gateway.openai.abortOf((r) => sentWith(r, prompt));
    const error = await caller.completeError(ask(prompt), { timeoutMs: 500 });
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect((await within(aborted, 2_000, "the upstream request closed")).path).toBe("/v1/chat/completions");
  });

  it("top_k, which OpenAI lacks: INVALID_ARGUMENT naming field and provider, and nothing is sent", async () => {
    const before = gateway.openai.requests.length;
    const request = ask(uniquePrompt("top_k"), { topK: 40 });
    const facts = {
      code: Code.InvalidArgument,
      errorInfo: [{ reason: "UNSUPPORTED_BY_PROVIDER", domain: "sluice", metadata: {} }],
      retryDelayMs: [],
      fieldViolations: [
        { field: "top_k", description: "not supported by provider oai (openai)", reason: "UNSUPPORTED_BY_PROVIDER" },
      ],
    };
    const unary = await caller.completeError(request);
    expect(errorFacts(unary)).toEqual(facts);
    expect(unary.rawMessage).toBe("top_k: not supported by provider oai (openai)");
    const streamed = await caller.stream(request);
    expect(streamed.events).toEqual([]);
    expect(errorFacts(streamed.error!)).toEqual(facts);
    if (protocol === "connect-json-h1") expect((await postCompleteJson(gateway.sluice.url, request)).status).toBe(400);
    expect(gateway.openai.requests.length).toBe(before);
  });
});
