import { describe, expect, it } from "vitest";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CompleteRequestSchema, type CompleteRequest } from "../../../gen/sluice/v1/chat_service_pb.js";
import { ImageDetail, Role, ToolChoiceMode, type MessageSchema } from "../../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { fallbackMaxOutputTokens, toAnthropicRequest, type AnthropicRequestOptions } from "./request.js";
import type { MessagesRequest } from "./wire.js";
import { messagesRequestSchema } from "../../../test/fixtures/providers/anthropic/messages-request-schema.js";
import { nockRecordings } from "../../../test/fixtures/providers/anthropic/fixtures.js";

type MessageInit = MessageInitShape<typeof MessageSchema>;

const options: AnthropicRequestOptions = { provider: "claude", model: "claude-sonnet-4-5", stream: false };

function request(init: MessageInitShape<typeof CompleteRequestSchema>): CompleteRequest {
  return create(CompleteRequestSchema, { model: "smart", ...init });
}
const text = (value: string) => ({ part: { case: "text" as const, value } });
const user = (...parts: string[]): MessageInit => ({ role: Role.USER, content: parts.map(text) });
const assistant = (value: string, toolCalls: Array<{ id: string; name: string; arguments: string }> = []): MessageInit => ({
  role: Role.ASSISTANT,
  content: value === "" ? [] : [text(value)],
  toolCalls,
});
const system = (...parts: string[]): MessageInit => ({ role: Role.SYSTEM, content: parts.map(text) });
const toolResult = (toolCallId: string, value: string): MessageInit => ({
  role: Role.TOOL,
  toolCallId,
  content: [text(value)],
});

function translate(init: MessageInitShape<typeof CompleteRequestSchema>, opts = options): MessagesRequest {
  return toAnthropicRequest(request(init), opts);
}

/** The BadRequest field names of the INVALID_ARGUMENT thrown by `fn`. */
function rejectedFields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    const error = err as ConnectError;
    expect(error.code).toBe(Code.InvalidArgument);
    return error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
  }
  throw new Error("expected INVALID_ARGUMENT, nothing was thrown");
}

/** Asserts the body matches Anthropic's documented request shape. */
function expectValidShape(body: unknown): void {
  const result = messagesRequestSchema.safeParse(body);
  expect(result.success ? [] : result.error.issues).toEqual([]);
}

describe("toAnthropicRequest: whole bodies", () => {
  it("translates a minimal request", () => {
    const body = translate({ messages: [user("Hello")] });
    expect(body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: fallbackMaxOutputTokens,
      messages: [{ role: "user", content: "Hello" }],
      stream: false,
    });
    expectValidShape(body);
    // The exact bytes sent: no undefined-valued keys leak into JSON as surprises.
    expect(JSON.stringify(body)).toBe(
      '{"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":"Hello"}],"stream":false}',
    );
  });

  it("translates a rich request", () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
    const body = toAnthropicRequest(
      request({
        messages: [
          system("You are terse."),
          user("What is in these pictures, and what is the weather?"),
          {
            role: Role.USER,
            content: [
              {
                part: {
                  case: "image",
                  value: { source: { case: "url", value: "https://example.com/a.jpg" }, detail: ImageDetail.HIGH },
                },
              },
              { part: { case: "image", value: { source: { case: "data", value: png }, mediaType: "image/png" } } },
              { part: { case: "image", value: { source: { case: "url", value: "data:image/webp;base64,UklGRg==" } } } },
            ],
          },
          assistant("Let me look.", [
            { id: "toolu_1", name: "get_weather", arguments: '{"city":"Paris"}' },
            { id: "toolu_2", name: "get_time", arguments: "" },
          ]),
          toolResult("toolu_1", "18°C"),
          toolResult("toolu_2", "noon"),
          user("Thanks. Answer in JSON."),
          system("Never use emoji."),
        ],
        temperature: 0.5,
        topP: 0.9,
        topK: 40,
        maxOutputTokens: 1000,
        stop: ["END"],
        tools: [
          {
            name: "get_weather",
            description: "Weather for a city",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
            strict: true,
          },
          { name: "get_time" },
        ],
        toolChoice: { choice: { case: "mode", value: ToolChoiceMode.AUTO } },
        parallelToolCalls: false,
        responseFormat: {
          format: {
            case: "jsonSchema",
            value: {
              name: "answer",
              schema: { type: "object", properties: { text: { type: "string" } }, additionalProperties: false },
            },
          },
        },
        metadata: { end_user: "u-1" },
      }),
      { ...options, stream: true, defaultMaxOutputTokens: 2000 },
    );
    expect(body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: 1000,
      system: "You are terse.\n\nNever use emoji.",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is in these pictures, and what is the weather?" },
            { type: "image", source: { type: "url", url: "https://example.com/a.jpg" } },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw==" } },
            { type: "image", source: { type: "base64", media_type: "image/webp", data: "UklGRg==" } },
          ],
        },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Let me look." },
            { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
            { type: "tool_use", id: "toolu_2", name: "get_time", input: {} },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: "18°C" },
            { type: "tool_result", tool_use_id: "toolu_2", content: "noon" },
            { type: "text", text: "Thanks. Answer in JSON." },
          ],
        },
      ],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      stop_sequences: ["END"],
      tools: [
        {
          name: "get_weather",
          description: "Weather for a city",
          input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          strict: true,
        },
        { name: "get_time", input_schema: { type: "object", properties: {} } },
      ],
      tool_choice: { type: "auto", disable_parallel_tool_use: true },
      output_config: {
        format: {
          type: "json_schema",
          schema: { type: "object", properties: { text: { type: "string" } }, additionalProperties: false },
        },
      },
      stream: true,
    });
    expectValidShape(body);
  });

  it("accepts the recordings' real request bodies in the shape schema (the schema is not too strict)", () => {
    const recordings = nockRecordings();
    expect(recordings).toHaveLength(10);
    for (const recording of recordings) expectValidShape(recording.body);
  });

  it("rejects bodies that break the documented shape (the schema is not too lax)", () => {
    const good = translate({ messages: [user("Hi")] });
    const broken: unknown[] = [
      { ...good, max_tokens: undefined },
      { ...good, messages: [{ role: "system", content: "x" }] },
      { ...good, messages: [{ role: "user", content: [{ type: "text", text: "" }] }] },
      { ...good, messages: [{ role: "user", content: [{ type: "tool_result", tool_use_ide: "x" }] }] },
      {
        ...good,
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "tool_result", tool_use_id: "x" },
            ],
          },
        ],
      },
      { ...good, temperature: 1.5 },
      { ...good, seed: 1 },
    ];
    for (const body of broken) expect(messagesRequestSchema.safeParse(body).success).toBe(false);
  });

  it("reproduces the SDK's recorded tool round trips message for message", () => {
    const recordings = nockRecordings();
    // Recording 3: two parallel tool calls and their two results, as the SDK sent them.
    const three = recordings[3]!.body as unknown as MessagesRequest;
    const body = translate(
      {
        messages: [
          user("Use the test_tool with count 1, then use it again with count 2"),
          assistant("I'll use the test_tool twice as requested - first with count 1, then with count 2.", [
            { id: "toolu_01L8GVQapA1HmggQcrwboukH", name: "test_tool", arguments: '{"count": 1}' },
            { id: "toolu_01J5Fvzxu7DP1Uh59c1kr5JD", name: "test_tool", arguments: '{"count": 2}' },
          ]),
          toolResult("toolu_01L8GVQapA1HmggQcrwboukH", "Called with 1"),
          toolResult("toolu_01J5Fvzxu7DP1Uh59c1kr5JD", "Called with 2"),
        ],
        maxOutputTokens: 1000,
        tools: [{ name: "test_tool", description: "A test tool", parameters: three.tools![0]!.input_schema }],
      },
      { ...options, model: "claude-sonnet-4-0" },
    );
    expect(body.messages).toEqual(three.messages);
    expect(body.max_tokens).toBe(three.max_tokens);
    expect(body.model).toBe(three.model);
    expect(body.stream).toBe(three.stream);
    const { type: _custom, ...recordedTool } = three.tools![0]! as unknown as Record<string, unknown>;
    expect(body.tools).toEqual([recordedTool]);

    // Recording 1: one call, one result.
    const one = recordings[1]!.body as unknown as MessagesRequest;
    const single = translate({
      messages: [
        user('Use the test_tool with value "test", then provide a final response'),
        assistant('I\'ll use the test_tool with the value "test" as requested, then provide a final response.', [
          { id: "toolu_011LF2VkWpAfJnTKJcmh1PNf", name: "test_tool", arguments: '{"value":"test"}' },
        ]),
        toolResult("toolu_011LF2VkWpAfJnTKJcmh1PNf", "Tool result"),
      ],
    });
    expect(single.messages).toEqual(one.messages);
  });
});

describe("toAnthropicRequest: max_tokens", () => {
  it("takes the request's limit, else the deployment's, else the fallback", () => {
    expect(translate({ messages: [user("a")], maxOutputTokens: 10 }, { ...options, defaultMaxOutputTokens: 99 }).max_tokens).toBe(
      10,
    );
    expect(translate({ messages: [user("a")] }, { ...options, defaultMaxOutputTokens: 99 }).max_tokens).toBe(99);
    expect(translate({ messages: [user("a")] }).max_tokens).toBe(4096);
  });

  it("rejects an explicit zero", () => {
    expect(rejectedFields(() => translate({ messages: [user("a")], maxOutputTokens: 0 }))).toEqual(["max_output_tokens"]);
  });
});

describe("toAnthropicRequest: system prompt", () => {
  it("hoists every system message, wherever it stands, joined in order", () => {
    const body = translate({ messages: [system("A", "B"), user("hi"), system("C")] });
    expect(body.system).toBe("A\n\nB\n\nC");
    expect(body.messages).toEqual([{ role: "user", content: "hi" }]);
  });

  it("leaves system out when there is none", () => {
    expect("system" in translate({ messages: [user("hi")] })).toBe(false);
  });

  it("rejects an image in a system message, naming the part", () => {
    const fields = rejectedFields(() =>
      translate({
        messages: [
          {
            role: Role.SYSTEM,
            content: [text("x"), { part: { case: "image", value: { source: { case: "url", value: "https://e.com/a.png" } } } }],
          },
          user("hi"),
        ],
      }),
    );
    expect(fields).toEqual(["messages[0].content[1]"]);
  });

  it("rejects a user message with nothing in it, and an assistant message without text or tool calls", () => {
    expect(rejectedFields(() => translate({ messages: [user(""), assistant("")] }))).toEqual([
      "messages[0].content",
      "messages[1].content",
    ]);
  });

  it("rejects a conversation of system messages only", () => {
    expect(rejectedFields(() => translate({ messages: [system("x")] }))).toEqual(["messages"]);
  });
});

describe("toAnthropicRequest: alternation", () => {
  it("merges consecutive tool results and a following user message into one user turn, results first", () => {
    const body = translate({
      messages: [
        user("q"),
        assistant("", [
          { id: "a", name: "f", arguments: "{}" },
          { id: "b", name: "f", arguments: "{}" },
        ]),
        toolResult("a", "1"),
        toolResult("b", "2"),
        user("and?"),
      ],
    });
    expect(body.messages).toEqual([
      { role: "user", content: "q" },
      {
        role: "assistant",
        content: [
          { type: "tool_use", id: "a", name: "f", input: {} },
          { type: "tool_use", id: "b", name: "f", input: {} },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "a", content: "1" },
          { type: "tool_result", tool_use_id: "b", content: "2" },
          { type: "text", text: "and?" },
        ],
      },
    ]);
  });

  it("puts tool results before user text that preceded them in the same turn", () => {
    const body = translate({
      messages: [user("q"), assistant("", [{ id: "a", name: "f", arguments: "{}" }]), user("note"), toolResult("a", "1")],
    });
    expect(body.messages[2]).toEqual({
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "a", content: "1" },
        { type: "text", text: "note" },
      ],
    });
  });

  it("merges consecutive user and consecutive assistant messages", () => {
    const body = translate({ messages: [user("a"), user("b", "c"), assistant("x"), assistant("y"), user("d")] });
    expect(body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "a" },
          { type: "text", text: "b" },
          { type: "text", text: "c" },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "text", text: "x" },
          { type: "text", text: "y" },
        ],
      },
      { role: "user", content: "d" },
    ]);
  });

  it("sends a conversation that starts with the assistant as it is (documented choice)", () => {
    const body = translate({ messages: [system("s"), assistant("How can I help?"), user("Sky colour?")] });
    expect(body.messages).toEqual([
      { role: "assistant", content: "How can I help?" },
      { role: "user", content: "Sky colour?" },
    ]);
  });

  it("always alternates, with tool results leading their turn, for any seeded random conversation", () => {
    let seed = 0x5eed;
    const random = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    for (let round = 0; round < 300; round++) {
      const messages: MessageInit[] = [];
      const length = 1 + Math.floor(random() * 12);
      for (let i = 0; i < length; i++) {
        const pick = Math.floor(random() * 4);
        if (pick === 0) messages.push(user(`u${i}`));
        else if (pick === 1)
          messages.push(assistant(`a${i}`, random() < 0.5 ? [{ id: `t${i}`, name: "f", arguments: "{}" }] : []));
        else if (pick === 2) messages.push(toolResult(`t${i}`, `r${i}`));
        else messages.push(system(`s${i}`));
      }
      if (messages.every((m) => m.role === Role.SYSTEM)) messages.push(user("last"));
      const body = translate({ messages });
      body.messages.forEach((m, i) => {
        if (i > 0) expect(m.role).not.toBe(body.messages[i - 1]!.role);
      });
      expectValidShape(body);
      // Nothing is lost: every non-system message's content arrives exactly once.
      const sent = JSON.stringify(body.messages);
      for (const m of messages) {
        if (m.role === Role.SYSTEM) continue;
        const value = (m.content?.[0] as { part: { value: string } } | undefined)?.part.value;
        if (value !== undefined) expect(sent.split(`"${value}"`).length - 1).toBe(1);
      }
    }
  });
});

describe("toAnthropicRequest: tools", () => {
  it("parses tool call arguments and rejects invalid JSON, naming the field", () => {
    const fields = rejectedFields(() =>
      translate({
        messages: [
          user("q"),
          assistant("", [
            { id: "a", name: "f", arguments: '{"ok":1}' },
            { id: "b", name: "f", arguments: '{"broken":' },
          ]),
        ],
      }),
    );
    expect(fields).toEqual(["messages[1].tool_calls[1].arguments"]);
  });

  it("rejects arguments that are JSON but not an object", () => {
    const fields = rejectedFields(() =>
      translate({ messages: [user("q"), assistant("", [{ id: "a", name: "f", arguments: "[1]" }])] }),
    );
    expect(fields).toEqual(["messages[1].tool_calls[0].arguments"]);
  });

  it("requires tool_call_id on tool results and rejects tool calls outside assistant messages", () => {
    const fields = rejectedFields(() =>
      translate({
        messages: [
          { role: Role.USER, content: [text("q")], toolCalls: [{ id: "x", name: "f", arguments: "{}" }] },
          toolResult("", "r"),
        ],
      }),
    );
    expect(fields).toEqual(["messages[0].tool_calls", "messages[1].tool_call_id"]);
  });

  it("keeps several result parts as blocks and images in results", () => {
    const body = translate({
      messages: [
        user("q"),
        assistant("", [{ id: "a", name: "f", arguments: "{}" }]),
        {
          role: Role.TOOL,
          toolCallId: "a",
          content: [text("see"), { part: { case: "image", value: { source: { case: "url", value: "https://e.com/p.gif" } } } }],
        },
      ],
    });
    expect(body.messages[2]).toEqual({
      role: "user",
      content: [
        {
          type: "tool_result",
          tool_use_id: "a",
          content: [
            { type: "text", text: "see" },
            { type: "image", source: { type: "url", url: "https://e.com/p.gif" } },
          ],
        },
      ],
    });
  });

  it.each([
    [{ case: "mode", value: ToolChoiceMode.AUTO }, undefined, { type: "auto" }],
    [{ case: "mode", value: ToolChoiceMode.REQUIRED }, undefined, { type: "any" }],
    [{ case: "mode", value: ToolChoiceMode.NONE }, undefined, { type: "none" }],
    [{ case: "toolName", value: "f" }, undefined, { type: "tool", name: "f" }],
    [{ case: "mode", value: ToolChoiceMode.REQUIRED }, false, { type: "any", disable_parallel_tool_use: true }],
    [{ case: "toolName", value: "f" }, false, { type: "tool", name: "f", disable_parallel_tool_use: true }],
    [{ case: "mode", value: ToolChoiceMode.NONE }, false, { type: "none" }],
    [undefined, false, { type: "auto", disable_parallel_tool_use: true }],
    [undefined, true, undefined],
    [undefined, undefined, undefined],
  ] as const)("maps tool_choice %j with parallel_tool_calls=%s", (choice, parallel, expected) => {
    const body = translate({
      messages: [user("q")],
      tools: [{ name: "f" }],
      ...(choice ? { toolChoice: { choice } } : {}),
      ...(parallel !== undefined ? { parallelToolCalls: parallel } : {}),
    });
    expect(body.tool_choice).toEqual(expected);
    expectValidShape(body);
  });

  it("rejects a named tool that is not declared, and required without tools", () => {
    expect(
      rejectedFields(() =>
        translate({ messages: [user("q")], tools: [{ name: "f" }], toolChoice: { choice: { case: "toolName", value: "g" } } }),
      ),
    ).toEqual(["tool_choice.tool_name"]);
    expect(
      rejectedFields(() =>
        translate({ messages: [user("q")], toolChoice: { choice: { case: "mode", value: ToolChoiceMode.REQUIRED } } }),
      ),
    ).toEqual(["tool_choice.mode"]);
  });

  it("sends no tool_choice without tools (the API refuses one)", () => {
    const body = translate({
      messages: [user("q")],
      toolChoice: { choice: { case: "mode", value: ToolChoiceMode.NONE } },
      parallelToolCalls: false,
    });
    expect(body.tool_choice).toBeUndefined();
    expect(body.tools).toBeUndefined();
  });
});

describe("toAnthropicRequest: images", () => {
  const image = (value: Record<string, unknown>): MessageInit => ({
    role: Role.USER,
    content: [{ part: { case: "image", value } }],
  });

  it("ignores the detail hint", () => {
    const url = { source: { case: "url", value: "https://e.com/a.png" } };
    expect(translate({ messages: [image({ ...url, detail: ImageDetail.LOW })] })).toEqual(translate({ messages: [image(url)] }));
  });

  it("rejects what the API cannot take, naming the field", () => {
    expect(
      rejectedFields(() => translate({ messages: [image({ source: { case: "url", value: "data:image/png,rawbytes" } })] })),
    ).toEqual(["messages[0].content[0].image.url"]);
    expect(
      rejectedFields(() => translate({ messages: [image({ source: { case: "url", value: "data:image/bmp;base64,Qk0=" } })] })),
    ).toEqual(["messages[0].content[0].image.url"]);
    expect(
      rejectedFields(() => translate({ messages: [image({ source: { case: "url", value: "ftp://e.com/a.png" } })] })),
    ).toEqual(["messages[0].content[0].image.url"]);
    expect(
      rejectedFields(() => translate({ messages: [image({ source: { case: "data", value: new Uint8Array([1]) } })] })),
    ).toEqual(["messages[0].content[0].image.media_type"]);
    expect(
      rejectedFields(() =>
        translate({
          messages: [
            user("q"),
            {
              role: Role.ASSISTANT,
              content: [{ part: { case: "image", value: { source: { case: "url", value: "https://e.com/a.png" } } } }],
            },
          ],
        }),
      ),
    ).toEqual(["messages[1].content[0].image"]);
  });
});

describe("toAnthropicRequest: settings Anthropic lacks", () => {
  it("rejects each, naming field and provider, all at once", () => {
    let error: ConnectError | undefined;
    try {
      translate({
        messages: [user("q")],
        seed: 7n,
        presencePenalty: 0.1,
        frequencyPenalty: 0.2,
        responseFormat: { format: { case: "jsonObject", value: {} } },
        temperature: 1.5,
      });
    } catch (err) {
      error = err as ConnectError;
    }
    expect(error?.code).toBe(Code.InvalidArgument);
    const violations = error!.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(violations.map((v) => v.field)).toEqual([
      "seed",
      "presence_penalty",
      "frequency_penalty",
      "temperature",
      "response_format.json_object",
    ]);
    expect(violations[0]!.description).toContain("provider claude");
    expect(violations[0]!.reason).toBe("UNSUPPORTED_BY_PROVIDER");
  });

  it("accepts zero-valued settings that are set (presence, not truthiness)", () => {
    expect(rejectedFields(() => translate({ messages: [user("q")], seed: 0n }))).toEqual(["seed"]);
    expect(translate({ messages: [user("q")], temperature: 0, topK: 0 })).toMatchObject({ temperature: 0, top_k: 0 });
  });

  it("accepts response_format text as the default", () => {
    const body = translate({ messages: [user("q")], responseFormat: { format: { case: "text", value: {} } } });
    expect(body.output_config).toBeUndefined();
  });
});

describe("toAnthropicRequest: purity", () => {
  it("never mutates its input and gives the same body on every run", () => {
    const input = request({
      messages: [
        system("s"),
        user("q"),
        assistant("x", [{ id: "a", name: "f", arguments: '{"k":[1,2]}' }]),
        toolResult("a", "r"),
        user("more"),
      ],
      tools: [{ name: "f", parameters: { type: "object", properties: { k: { type: "array" } } } }],
      stop: ["x"],
    });
    const before = toBinary(CompleteRequestSchema, input);
    deepFreeze(input);
    const first = toAnthropicRequest(input, options);
    const second = toAnthropicRequest(input, options);
    expect(toBinary(CompleteRequestSchema, input)).toEqual(before);
    expect(second).toEqual(first);
    // The body's arrays are its own: appending to them cannot reach the request.
    expect(first.stop_sequences).not.toBe(input.stop);
  });
});

function deepFreeze(value: unknown): void {
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
}
