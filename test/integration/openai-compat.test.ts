import OpenAI, { AuthenticationError, BadRequestError, NotFoundError, RateLimitError, APIError } from "openai";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSseFixture } from "../fixtures/providers/openai/fixtures.js";
import { sseTranscript } from "../fixtures/providers/anthropic/fixtures.js";
import { jsonResponse, splitEvery, sseResponse, type FakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import { startCompatGateway, type CompatGateway } from "../helpers/compat-gateway.js";
import type { StartedSluice } from "../helpers/start-sluice.js";

// The OpenAI-compatible API (README "OpenAI-compatible API") driven by the official openai
// SDK against a real Sluice whose upstreams are a fake OpenAI and a fake Anthropic on
// loopback: the same pipeline as gRPC callers (auth, limits, routing), OpenAI's shapes back.

const key = "sk-sluice-compat-main-0123456789abcdef0123456";
const limitedKey = "sk-sluice-compat-conc-0123456789abcdef0123456";

let openaiUp: FakeUpstream;
let anthropicUp: FakeUpstream;
let gateway: StartedSluice;
let client: OpenAI;

let setup: CompatGateway;

beforeAll(async () => {
  setup = await startCompatGateway(key, limitedKey);
  ({ openaiUp, anthropicUp, gateway } = setup);
  client = new OpenAI({ apiKey: key, baseURL: `${gateway.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await setup?.close();
});

const anthropicMessage = (text: string) =>
  jsonResponse(200, {
    id: "msg_compat",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content: [{ type: "text", text }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 11, output_tokens: 3 },
  });

describe("OpenAI SDK → Sluice → OpenAI upstream", () => {
  it("unary: the chat.completion shape, Sluice's headers, the translated request upstream", async () => {
    openaiUp.respond(() => completion("Hello there"));
    const { data, response } = await client.chat.completions
      .create({
        model: "gpt",
        messages: [
          { role: "developer", content: "be brief" },
          { role: "user", content: [{ type: "text", text: "hi" }] },
        ],
        temperature: 0.2,
        max_completion_tokens: 50,
        stop: "END",
        seed: 7,
        user: "end-user-1",
      })
      .withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]!.message).toMatchObject({ role: "assistant", content: "Hello there" });
    expect(data.choices[0]!.finish_reason).toBe("stop");
    expect(data.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(response.headers.get("x-request-id")).toBeTruthy();
    expect(response.headers.get("sluice-provider")).toBe("oai");
    const sent = openaiUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      model: "gpt-4o",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: "hi" },
      ],
      temperature: 0.2,
      max_completion_tokens: 50,
      stop: ["END"],
      seed: 7,
    });
    // `user` became metadata: kept in the gateway, never sent upstream.
    expect(sent).not.toHaveProperty("user");
  });

  it("streaming text with include_usage: deltas, finish, usage chunk, [DONE]", async () => {
    openaiUp.respond(() => streamOf(["Hel", "lo", "!"]));
    const stream = await client.chat.completions.create({
      model: "gpt",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      const choice = chunk.choices[0];
      if (choice !== undefined) {
        text += choice.delta.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("Hello!");
    expect(finish).toBe("stop");
    expect(usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  });

  it("streaming tool calls: the SDK's stream helper reassembles the fragments", async () => {
    openaiUp.respond(() => sseResponse(splitEvery(readSseFixture("py_tool_calls_parallel_two.sse"), 97)));
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: "function",
        function: { name: "GetWeatherArgs", parameters: { type: "object", properties: { city: { type: "string" } } } },
      },
    ];
    const runner = client.chat.completions.stream({
      model: "gpt",
      messages: [{ role: "user", content: "weather in two cities" }],
      tools,
      tool_choice: "auto",
      parallel_tool_calls: true,
    });
    const final = await runner.finalChatCompletion();
    const calls = final.choices[0]!.message.tool_calls!;
    expect(calls).toHaveLength(2);
    const names: string[] = [];
    for (const call of calls) {
      expect(call.type).toBe("function");
      if (call.type !== "function") continue;
      expect(call.id).toMatch(/^call_/);
      names.push(call.function.name);
      expect(JSON.parse(call.function.arguments)).toBeTypeOf("object");
    }
    expect(names).toEqual(["GetWeatherArgs", "get_stock_price"]);
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    const sent = openaiUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ tools, tool_choice: "auto", parallel_tool_calls: true, stream: true });
  });

  it("tools and a tool result round trip; response_format json_schema reaches the provider", async () => {
    openaiUp.respond(() => completion('{"city":"Paris"}'));
    const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false };
    const answer = await client.chat.completions.create({
      model: "gpt",
      messages: [
        { role: "user", content: "where?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "locate", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "call_1", content: "Paris" },
      ],
      tools: [{ type: "function", function: { name: "locate", parameters: { type: "object", properties: {} } } }],
      tool_choice: { type: "function", function: { name: "locate" } },
      response_format: { type: "json_schema", json_schema: { name: "place", schema, strict: true } },
    });
    expect(JSON.parse(answer.choices[0]!.message.content!)).toEqual({ city: "Paris" });
    const sent = openaiUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      messages: [
        { role: "user", content: "where?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "locate" } }] },
        { role: "tool", tool_call_id: "call_1", content: "Paris" },
      ],
      tool_choice: { type: "function", function: { name: "locate" } },
      response_format: { type: "json_schema", json_schema: { name: "place", schema, strict: true } },
    });
  });

  it("a stream the upstream cuts mid-way ends with an error the SDK raises, not a clean end", async () => {
    openaiUp.respond(() => ({
      ...streamOf(["one ", "two ", "three"], {}, false),
      resetAfterChunks: 3,
      delayBetweenChunksMs: 100,
    }));
    const stream = await client.chat.completions.create({
      model: "gpt",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let text = "";
    const outcome = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return "clean end";
    })().catch((err: unknown) => err);
    expect(text.startsWith("one ")).toBe(true);
    expect(outcome).toBeInstanceOf(APIError);
    expect((outcome as APIError).message).toMatch(/stream/i);
  });
});

describe("OpenAI SDK → Sluice → Anthropic upstream (a Claude model through the OpenAI SDK)", () => {
  it("unary", async () => {
    anthropicUp.respond(() => anthropicMessage("Bonjour"));
    const answer = await client.chat.completions.create({
      model: "sonnet",
      messages: [
        { role: "system", content: "in French" },
        { role: "user", content: "hello" },
      ],
      max_tokens: 100,
    });
    expect(answer.choices[0]!.message.content).toBe("Bonjour");
    expect(answer.model).toBe("claude-sonnet-4-5-20250929");
    expect(answer.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 3 });
    const sent = anthropicUp.requests.at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ model: "claude-sonnet-4-5", system: "in French", max_tokens: 100 });
  });

  it("streaming text and a tool call, reassembled by the SDK", async () => {
    anthropicUp.respond(() => sseResponse(splitEvery(sseTranscript("sse/ts_tool_use.sse"), 61)));
    const runner = client.chat.completions.stream({
      model: "sonnet",
      messages: [{ role: "user", content: "weather in Paris?" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }],
    });
    const final = await runner.finalChatCompletion();
    const message = final.choices[0]!.message;
    expect(message.content).toBe("I'll check the current weather in Paris for you.");
    const call = message.tool_calls![0]!;
    expect(call.type === "function" && call.function.name).toBe("get_weather");
    expect(call.id).toBe("toolu_01NRLabsLyVHZPKxbKvkfSMn");
    if (call.type === "function") expect(JSON.parse(call.function.arguments)).toHaveProperty("location");
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
  });
});

describe("errors in OpenAI's shape", () => {
  it("an unknown model: NotFoundError, code model_not_found", async () => {
    const err = await client.chat.completions
      .create({ model: "nope", messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.status).toBe(404);
    expect(err.code).toBe("model_not_found");
    expect(err.type).toBe("not_found_error");
    expect(err.headers.get("x-request-id")).toBeTruthy();
  });

  it("a bad key: AuthenticationError", async () => {
    const bad = new OpenAI({ apiKey: "sk-sluice-wrong-0000000000000000000000000", baseURL: `${gateway.url}/v1`, maxRetries: 0 });
    const err = await bad.chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "hi" }] }).catch((e) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.type).toBe("authentication_error");
    expect(err.code).toBe("unauthenticated");
  });

  it("an unsupported field is refused by name", async () => {
    for (const [extra, param] of [
      [{ n: 2 }, "n"],
      [{ logprobs: true }, "logprobs"],
      [{ logit_bias: { "50256": -100 } }, "logit_bias"],
      [{ audio: { voice: "alloy", format: "mp3" } }, "audio"],
      [{ functions: [{ name: "f" }] }, "functions"],
    ] as const) {
      const err = await client.chat.completions
        .create({ model: "gpt", messages: [{ role: "user", content: "hi" }], ...(extra as object) })
        .catch((e) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect(err.param).toBe(param);
      expect(err.type).toBe("invalid_request_error");
    }
  });

  it("a tenant limit: RateLimitError with retry-after; the SDK's retry waits the advertised delay", async () => {
    const limited = (maxRetries: number) => new OpenAI({ apiKey: limitedKey, baseURL: `${gateway.url}/v1`, maxRetries });
    // One call holds the tenant's only concurrency slot.
    const holder = new AbortController();
    const held = limited(0)
      .chat.completions.create({ model: "slow", messages: [{ role: "user", content: "hold" }] }, { signal: holder.signal })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const err = await limited(0)
      .chat.completions.create({ model: "slow", messages: [{ role: "user", content: "hi" }] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.code).toBe("concurrency_limited");
    expect(err.headers.get("retry-after")).toBe("1");
    // With retries: refused at first, the holder leaves meanwhile, the SDK retries after retry-after (1 s).
    openaiUp.respond(() => completion("ok"));
    const started = performance.now();
    const retried = limited(2)
      .chat.completions.create({ model: "gpt", messages: [{ role: "user", content: "again" }] })
      .then(() => performance.now() - started);
    setTimeout(() => holder.abort(), 150);
    await held;
    const elapsed = await retried;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(4_000);
  });
});

describe("GET /v1/models", () => {
  it("lists the aliases in OpenAI's list shape", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual(["gpt", "slow", "sonnet"]);
    expect(models.data.find((m) => m.id === "gpt")).toMatchObject({ object: "model", owned_by: "oai" });
  });
});

describe("plain HTTP, as curl -N reads it", () => {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    request(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  it("data: lines, and : keep-alive heartbeats while the model is silent", async () => {
    openaiUp.respond(() => ({ ...streamOf(["a", "b"]), delayBeforeHeadersMs: 300, delayBetweenChunksMs: 120 }));
    const response = await post({ model: "gpt", messages: [{ role: "user", content: "hi" }], stream: true });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    const text = await response.body.text();
    const lines = text.split("\n").filter((line) => line !== "");
    // Heartbeats (heartbeatMs 50 here) came before the first token.
    expect(lines[0]).toBe(": keep-alive");
    const data = lines.filter((line) => line.startsWith("data: "));
    expect(data.at(-1)).toBe("data: [DONE]");
    for (const line of data.slice(0, -1)) expect(JSON.parse(line.slice(6)).object).toBe("chat.completion.chunk");
    expect(lines.every((line) => line.startsWith("data: ") || line === ": keep-alive")).toBe(true);
  });

  it("415 for a body that is not JSON, 405 for another method, 400 for malformed JSON", async () => {
    const wrongType = await post("hi", { "content-type": "text/plain" });
    expect(wrongType.statusCode).toBe(415);
    expect(((await wrongType.body.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    const get = await request(`${gateway.url}/v1/chat/completions`);
    expect(get.statusCode).toBe(405);
    expect(get.headers.allow).toBe("POST");
    await get.body.dump();
    const malformed = await post("{not json");
    expect(malformed.statusCode).toBe(400);
    expect(((await malformed.body.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
  });

  it("the caller going away cancels the upstream call", async () => {
    openaiUp.respond(() => ({ ...streamOf(["a"], {}, false), stallAfterChunks: true }));
    const controller = new AbortController();
    const response = await request(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "cancel me" }], stream: true }),
      signal: controller.signal,
    });
    const aborted = openaiUp.abortOf((r) => r.bodyText.includes("cancel me"));
    for await (const chunk of response.body) {
      if (String(chunk).includes('"a"')) break;
    }
    controller.abort();
    await expect(aborted).resolves.toBeDefined();
  });
});
