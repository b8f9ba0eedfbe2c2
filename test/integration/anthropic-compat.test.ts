import Anthropic, { AuthenticationError, BadRequestError, NotFoundError, RateLimitError, APIError } from "@anthropic-ai/sdk";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sseTranscript } from "../fixtures/providers/anthropic/fixtures.js";
import { readSseFixture } from "../fixtures/providers/openai/fixtures.js";
import { jsonResponse, splitEvery, sseResponse, type FakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import { startCompatGateway, type CompatGateway } from "../helpers/compat-gateway.js";
import type { StartedSluice } from "../helpers/start-sluice.js";

// The Anthropic-compatible API (README "Anthropic-compatible API") driven by the official
// @anthropic-ai/sdk against a real Sluice whose upstreams are a fake Anthropic and a fake
// OpenAI on loopback: the same pipeline as gRPC callers, Anthropic's shapes back.

const key = "sk-sluice-anthro-main-0123456789abcdef0123456";
const limitedKey = "sk-sluice-anthro-conc-0123456789abcdef0123456";

let anthropicUp: FakeUpstream;
let openaiUp: FakeUpstream;
let gateway: StartedSluice;
let client: Anthropic;

let setup: CompatGateway;

beforeAll(async () => {
  setup = await startCompatGateway(key, limitedKey);
  ({ openaiUp, anthropicUp, gateway } = setup);
  client = new Anthropic({ apiKey: key, baseURL: gateway.url, maxRetries: 0 });
});
afterAll(async () => {
  await setup?.close();
});

const anthropicMessage = (content: object[], stop = "end_turn") =>
  jsonResponse(200, {
    id: "msg_compat",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content,
    stop_reason: stop,
    stop_sequence: null,
    usage: { input_tokens: 11, output_tokens: 3 },
  });

/** The SSE events of a raw response body, in order. */
function eventsOf(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split("\n\n")
    .filter((frame) => frame.trim() !== "")
    .map((frame) => {
      const event = /^event: (.*)$/m.exec(frame)?.[1] ?? "";
      const data = /^data: (.*)$/m.exec(frame)?.[1] ?? "{}";
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

/** The event sequence is well formed: one message_start, blocks opened/closed in order, message_delta, message_stop. */
function expectWellFormed(events: Array<{ event: string; data: Record<string, unknown> }>): void {
  const names = events.map((e) => e.event).filter((name) => name !== "ping");
  expect(names[0]).toBe("message_start");
  expect(names.filter((n) => n === "message_start")).toHaveLength(1);
  expect(names.slice(-2)).toEqual(["message_delta", "message_stop"]);
  let open: { index: number; type: string } | undefined;
  let next = 0;
  for (const { event, data } of events) {
    if (event === "content_block_start") {
      expect(open).toBeUndefined();
      expect(data.index).toBe(next++);
      open = { index: data.index as number, type: (data.content_block as { type: string }).type };
    } else if (event === "content_block_delta") {
      expect(data.index).toBe(open?.index);
      const type = (data.delta as { type: string }).type;
      const expected = { text: "text_delta", thinking: "thinking_delta", tool_use: "input_json_delta" }[open!.type];
      expect(type).toBe(expected);
    } else if (event === "content_block_stop") {
      expect(data.index).toBe(open?.index);
      open = undefined;
    } else if (event === "message_delta") {
      expect(open).toBeUndefined();
    }
  }
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  request(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("Anthropic SDK → Sluice → Anthropic upstream", () => {
  it("unary: the message shape, request-id, the translated request upstream", async () => {
    anthropicUp.respond(() => anthropicMessage([{ type: "text", text: "Bonjour" }]));
    const { data, response } = await client.messages
      .create({
        model: "sonnet",
        max_tokens: 100,
        system: [{ type: "text", text: "in French" }],
        messages: [{ role: "user", content: "hello" }],
        // Sampling settings the SDK's types no longer list for newer models; the API still takes them.
        ...({ temperature: 0.3, top_k: 5 } as object),
        stop_sequences: ["END"],
        metadata: { user_id: "end-user-1" },
      })
      .withResponse();
    expect(data).toMatchObject({
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-5-20250929",
      content: [{ type: "text", text: "Bonjour" }],
      stop_reason: "end_turn",
      usage: { input_tokens: 11, output_tokens: 3 },
    });
    expect(response.headers.get("request-id")).toBeTruthy();
    expect(response.headers.get("request-id")).toBe(response.headers.get("x-request-id"));
    const sent = anthropicUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      model: "claude-sonnet-4-5",
      system: "in French",
      max_tokens: 100,
      temperature: 0.3,
      top_k: 5,
      stop_sequences: ["END"],
      messages: [{ role: "user", content: "hello" }],
    });
    expect(sent).not.toHaveProperty("metadata");
  });

  it("streaming: messages.stream()'s final message equals the unary answer's shape; raw event order", async () => {
    const transcript = sseTranscript("sse/ts_tool_use.sse");
    anthropicUp.respond(() => sseResponse(splitEvery(transcript, 61)));
    const tools: Anthropic.Tool[] = [{ name: "get_weather", input_schema: { type: "object", properties: {} } }];
    const final = await client.messages
      .stream({ model: "sonnet", max_tokens: 200, messages: [{ role: "user", content: "weather in Paris?" }], tools })
      .finalMessage();
    expect(final.content[0]).toEqual({ type: "text", text: "I'll check the current weather in Paris for you." });
    const toolUse = final.content[1] as Anthropic.ToolUseBlock;
    expect(toolUse).toMatchObject({ type: "tool_use", id: "toolu_01NRLabsLyVHZPKxbKvkfSMn", name: "get_weather" });
    expect(toolUse.input).toHaveProperty("location");
    expect(final.stop_reason).toBe("tool_use");

    // The same exchange unary: the same message (ids, blocks, stop reason, usage).
    const blocks = final.content.map((b) => (b.type === "text" ? { type: "text", text: b.text } : b));
    anthropicUp.respond(() =>
      jsonResponse(200, {
        ...final,
        content: blocks,
        usage: { input_tokens: final.usage.input_tokens, output_tokens: final.usage.output_tokens },
      }),
    );
    const unary = await client.messages.create({
      model: "sonnet",
      max_tokens: 200,
      messages: [{ role: "user", content: "weather in Paris?" }],
      tools,
    });
    const shape = ({
      parsed_output: _p,
      stop_details: _s,
      ...m
    }: Anthropic.Message & { parsed_output?: unknown; stop_details?: unknown }) => ({
      ...m,
      content: m.content.map((b) => ({ ...b })),
      usage: { input_tokens: m.usage.input_tokens, output_tokens: m.usage.output_tokens },
    });
    expect(shape(unary)).toEqual(shape(final));

    anthropicUp.respond(() => sseResponse(splitEvery(transcript, 61)));
    const raw = await post("/v1/messages", {
      model: "sonnet",
      max_tokens: 200,
      stream: true,
      messages: [{ role: "user", content: "weather in Paris?" }],
      tools,
    });
    expect(raw.statusCode).toBe(200);
    expect(raw.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    const events = eventsOf(await raw.body.text());
    expectWellFormed(events);
    expect(
      events.filter((e) => e.event === "content_block_start").map((e) => (e.data.content_block as { type: string }).type),
    ).toEqual(["text", "tool_use"]);
    const delta = events.find((e) => e.event === "message_delta")!.data;
    expect(delta).toMatchObject({ delta: { stop_reason: "tool_use" }, usage: { output_tokens: expect.any(Number) } });
  });

  it("thinking from a recorded extended-thinking stream lands in a thinking block, never in text", async () => {
    anthropicUp.respond(() => sseResponse(splitEvery(sseTranscript("sse/docs/docs_extended_thinking_streaming.sse"), 50)));
    const stream = client.messages.stream({
      model: "sonnet",
      max_tokens: 200,
      messages: [{ role: "user", content: "27 * 453?" }],
    });
    let thinking = "";
    stream.on("thinking", (delta) => {
      thinking += delta;
    });
    const final = await stream.finalMessage();
    expect(final.content[0]!.type).toBe("thinking");
    expect((final.content[0] as Anthropic.ThinkingBlock).thinking).toBe(thinking);
    expect(thinking).toContain("27 * 453");
    const text = final.content
      .filter((b): b is Anthropic.TextBlock => b.type === "text")
      .map((b) => b.text)
      .join("");
    expect(text).not.toContain("First break down");
    expect(text.length).toBeGreaterThan(0);

    anthropicUp.respond(() => sseResponse([sseTranscript("sse/docs/docs_extended_thinking_streaming.sse")]));
    const raw = await post("/v1/messages", {
      model: "sonnet",
      max_tokens: 200,
      stream: true,
      messages: [{ role: "user", content: "x" }],
    });
    const events = eventsOf(await raw.body.text());
    expectWellFormed(events);
  });

  it("a tool_use round trip: tool_result and tool_choice reach the provider", async () => {
    anthropicUp.respond(() => anthropicMessage([{ type: "text", text: "It is sunny." }]));
    const answer = await client.messages.create({
      model: "sonnet",
      max_tokens: 100,
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sunny" }] },
      ],
      tools: [
        {
          name: "get_weather",
          description: "weather",
          input_schema: { type: "object", properties: { city: { type: "string" } } },
        },
      ],
      tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    });
    expect(answer.content).toEqual([{ type: "text", text: "It is sunny." }]);
    const sent = anthropicUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sunny" }] },
      ],
      tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    });
  });
});

describe("Anthropic SDK → Sluice → OpenAI upstream (a GPT model through the Anthropic SDK)", () => {
  it("unary, with an image and bearer auth", async () => {
    openaiUp.respond(() => completion("a red dot"));
    const bearer = new Anthropic({ authToken: key, apiKey: null, baseURL: gateway.url, maxRetries: 0 });
    const answer = await bearer.messages.create({
      model: "gpt",
      max_tokens: 50,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
          ],
        },
      ],
    });
    expect(answer).toMatchObject({
      content: [{ type: "text", text: "a red dot" }],
      stop_reason: "end_turn",
      usage: { input_tokens: 3, output_tokens: 2 },
    });
    const sent = openaiUp.requests.at(-1)!.body as {
      messages: Array<{ content: Array<{ type: string }> }>;
      max_completion_tokens: number;
    };
    expect(sent.messages[0]!.content.map((p) => p.type)).toEqual(["text", "image_url"]);
  });

  it("streaming text and a tool call from OpenAI chunks: Anthropic events", async () => {
    openaiUp.respond(() => streamOf(["Hel", "lo"]));
    const text = await client.messages
      .stream({ model: "gpt", max_tokens: 50, messages: [{ role: "user", content: "hi" }] })
      .finalText();
    expect(text).toBe("Hello");

    openaiUp.respond(() => sseResponse(splitEvery(readSseFixture("py_tool_calls_parallel_two.sse"), 97)));
    const final = await client.messages
      .stream({
        model: "gpt",
        max_tokens: 50,
        messages: [{ role: "user", content: "two cities" }],
        tools: [{ name: "GetWeatherArgs", input_schema: { type: "object", properties: {} } }],
      })
      .finalMessage();
    const uses = final.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    expect(uses.map((u) => u.name)).toEqual(["GetWeatherArgs", "get_stock_price"]);
    for (const use of uses) expect(use.input).toBeTypeOf("object");
    expect(final.stop_reason).toBe("tool_use");
  });

  it("reasoning_content from an OpenAI-compatible upstream streams as thinking blocks", async () => {
    const chunk = (delta: object, finish: string | null = null) =>
      `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    openaiUp.respond(() =>
      sseResponse([
        chunk({ role: "assistant", content: "" }),
        chunk({ reasoning_content: "think " }),
        chunk({ reasoning_content: "hard" }),
        chunk({ content: "42" }),
        chunk({}, "stop"),
        "data: [DONE]\n\n",
      ]),
    );
    const raw = await post("/v1/messages", {
      model: "gpt",
      max_tokens: 50,
      stream: true,
      messages: [{ role: "user", content: "?" }],
    });
    const events = eventsOf(await raw.body.text());
    expectWellFormed(events);
    const starts = events
      .filter((e) => e.event === "content_block_start")
      .map((e) => (e.data.content_block as { type: string }).type);
    expect(starts).toEqual(["thinking", "text"]);
  });
});

describe("errors in Anthropic's shape", () => {
  it("an unknown model: NotFoundError (404, not_found_error)", async () => {
    const err = await client.messages
      .create({ model: "nope", max_tokens: 10, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.status).toBe(404);
    expect(err.error).toMatchObject({ type: "error", error: { type: "not_found_error" } });
    expect(err.requestID).toBeTruthy();
  });

  it("a bad key: AuthenticationError", async () => {
    const bad = new Anthropic({ apiKey: "sk-sluice-wrong-0000000000000000000000000", baseURL: gateway.url, maxRetries: 0 });
    const err = await bad.messages
      .create({ model: "sonnet", max_tokens: 10, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.error.error.type).toBe("authentication_error");
  });

  it("refused fields are named: 400 invalid_request_error", async () => {
    for (const [extra, name] of [
      [{ thinking: { type: "enabled", budget_tokens: 1024 } }, "thinking"],
      [{ service_tier: "auto" }, "service_tier"],
      [{ mcp_servers: [] }, "mcp_servers"],
      [{ tools: [{ type: "web_search_20250305", name: "web_search" }] }, "tools.0.type"],
    ] as const) {
      const err = await client.messages
        .create({ model: "sonnet", max_tokens: 10, messages: [{ role: "user", content: "hi" }], ...(extra as object) } as never)
        .catch((e) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect(err.error.error.type).toBe("invalid_request_error");
      expect(err.error.error.message).toContain(name);
    }
    const missing = await post("/v1/messages", { model: "sonnet", messages: [{ role: "user", content: "hi" }] });
    expect(missing.statusCode).toBe(400);
    expect(await missing.body.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message: expect.stringContaining("max_tokens") },
    });
  });

  it("a tenant limit: RateLimitError with retry-after", async () => {
    const limited = new Anthropic({ apiKey: limitedKey, baseURL: gateway.url, maxRetries: 0 });
    const holder = new AbortController();
    const held = limited.messages
      .create({ model: "slow", max_tokens: 10, messages: [{ role: "user", content: "hold" }] }, { signal: holder.signal })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const err = await limited.messages
      .create({ model: "slow", max_tokens: 10, messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    holder.abort();
    await held;
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.headers.get("retry-after")).toBe("1");
    expect(err.error.error.type).toBe("rate_limit_error");
  });

  it("a stream the upstream cuts mid-way: the SDK raises; the raw stream ends with event: error, no message_stop", async () => {
    const transcript = sseTranscript("sse/ts_basic_text.sse");
    const chunks = splitEvery(transcript, 40);
    anthropicUp.respond(() => sseResponse(chunks, { resetAfterChunks: Math.floor(chunks.length / 2), delayBetweenChunksMs: 20 }));
    const outcome = await client.messages
      .stream({ model: "sonnet", max_tokens: 50, messages: [{ role: "user", content: "hi" }] })
      .finalMessage()
      .then(() => "clean end")
      .catch((e: unknown) => e);
    expect(outcome).toBeInstanceOf(APIError);

    anthropicUp.respond(() => sseResponse(chunks, { resetAfterChunks: Math.floor(chunks.length / 2), delayBetweenChunksMs: 20 }));
    const raw = await post("/v1/messages", {
      model: "sonnet",
      max_tokens: 50,
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const events = eventsOf(await raw.body.text());
    expect(events.at(-1)!.event).toBe("error");
    expect(events.at(-1)!.data).toMatchObject({
      type: "error",
      error: { type: expect.any(String), message: expect.any(String) },
    });
    expect(events.some((e) => e.event === "message_stop")).toBe(false);
  });
});

describe("count_tokens and plain HTTP", () => {
  it("count_tokens: an estimate, scaled for the alias's provider", async () => {
    const body = {
      model: "sonnet",
      system: "be brief",
      messages: [{ role: "user" as const, content: "hello there, how are you today?" }],
    };
    const claude = await client.messages.countTokens(body);
    const gpt = await client.messages.countTokens({ ...body, model: "gpt" });
    expect(gpt.input_tokens).toBeGreaterThan(5);
    expect(claude.input_tokens).toBe(Math.ceil(gpt.input_tokens * 1.2));
    const err = await client.messages.countTokens({ ...body, model: "nope" }).catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
  });

  it("ping heartbeats while the model is silent (curl -N)", async () => {
    openaiUp.respond(() => ({ ...streamOf(["a", "b"]), delayBeforeHeadersMs: 300 }));
    const raw = await post("/v1/messages", {
      model: "gpt",
      max_tokens: 10,
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const events = eventsOf(await raw.body.text());
    expect(events[0]!.event).toBe("ping");
    expectWellFormed(events);
  });

  it("405 for GET, 415 for a body that is not JSON", async () => {
    const get = await request(`${gateway.url}/v1/messages`);
    expect(get.statusCode).toBe(405);
    expect(await get.body.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
    const wrong = await post("/v1/messages", "hi", { "content-type": "text/plain" });
    expect(wrong.statusCode).toBe(415);
    await wrong.body.dump();
  });
});
