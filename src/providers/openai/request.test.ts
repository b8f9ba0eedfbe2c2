import { describe, expect, it } from "vitest";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CompleteRequestSchema, type CompleteRequest } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role, ToolChoiceMode } from "../../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { buildChatRequest, type ChatRequestOptions } from "./request.js";
import { createChatRequestValidator } from "../../../test/fixtures/providers/openai/fixtures.js";
import { richBody, richRequest } from "../../../test/fixtures/providers/openai/requests.js";

const options: ChatRequestOptions = { model: "gpt-4o-mini", stream: false, provider: "oai" };
const spec = createChatRequestValidator();

function request(init: MessageInitShape<typeof CompleteRequestSchema>): CompleteRequest {
  return create(CompleteRequestSchema, { model: "alias", ...init });
}
const text = (value: string) => ({ part: { case: "text" as const, value } });
const user = (...parts: string[]) => ({ role: Role.USER, content: parts.map(text) });

/** The BadRequest violations of the INVALID_ARGUMENT thrown by `fn`. */
function violations(fn: () => unknown): Array<{ field: string; description: string; reason: string }> {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError)
      .findDetails(BadRequestSchema)
      .flatMap((d) => d.fieldViolations.map(({ field, description, reason }) => ({ field, description, reason })));
  }
  throw new Error("expected INVALID_ARGUMENT, nothing was thrown");
}

describe("buildChatRequest", () => {
  it("translates a minimal request to model + messages only", () => {
    const body = buildChatRequest(request({ messages: [user("Hello")] }), options);
    expect(body).toEqual({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hello" }] });
    expect(spec.errors(body)).toEqual([]);
  });

  it("translates every field of a rich request", () => {
    const body = buildChatRequest(richRequest(), options);
    expect(body).toEqual(richBody);
    expect(spec.errors(body)).toEqual([]);
    expect(spec.undeclaredKeys(body)).toEqual([]);
    // Survives the one JSON.stringify the adapter does (no bigint left behind).
    expect(JSON.parse(JSON.stringify(body))).toEqual(richBody);
  });

  it("checks bodies with a validator that does catch violations and undeclared keys", () => {
    // The guard for the tests above: a schema that failed to compile, or a key check that
    // saw nothing, would pass every body.
    const bad = {
      model: 1,
      messages: [
        { role: "wizard", content: "x" },
        { role: "user", content: [{ type: "image_url", image_url: {} }] },
      ],
      temperature: 3,
      stop: [],
    };
    expect(spec.errors(bad)).toEqual(
      expect.arrayContaining(["/model must be string", "/temperature must be <= 2", "/stop must be null"]),
    );
    expect(spec.undeclaredKeys({ ...richBody, max_completion_token: 1, stream_options: { include_usage: true, x: 1 } })).toEqual([
      "$.max_completion_token",
      "$.stream_options.x",
    ]);
    const withBadPart = structuredClone(richBody);
    (withBadPart.messages[1]!.content as Array<Record<string, unknown>>)[1]!["image_url"] = { url: "u", details: "high" };
    expect(spec.undeclaredKeys(withBadPart)).toEqual(["$.messages[1].content[1].image_url.details"]);
  });

  it("adds stream and stream_options.include_usage when streaming", () => {
    const body = buildChatRequest(request({ messages: [user("Hi")] }), { ...options, stream: true });
    expect(body).toEqual({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(spec.errors(body)).toEqual([]);
    expect(spec.undeclaredKeys(body)).toEqual([]);
  });

  it("never mutates the request (it is translated again on retry and fallback)", () => {
    const input = richRequest();
    const before = structuredClone(input);
    const first = buildChatRequest(input, options);
    expect(input).toEqual(before);
    expect(buildChatRequest(input, options)).toEqual(first);
  });

  it("sends proto3 optional settings only when set, including explicit zeros and false", () => {
    const body = buildChatRequest(
      request({
        messages: [user("x")],
        temperature: 0,
        topP: 0,
        seed: 0n,
        presencePenalty: 0,
        frequencyPenalty: 0,
        tools: [{ name: "t", strict: false }],
        parallelToolCalls: true,
      }),
      options,
    );
    expect(body).toMatchObject({
      temperature: 0,
      top_p: 0,
      seed: 0,
      presence_penalty: 0,
      frequency_penalty: 0,
      parallel_tool_calls: true,
    });
    expect(body.tools).toEqual([{ type: "function", function: { name: "t", strict: false } }]);
    const unset = buildChatRequest(request({ messages: [user("x")], tools: [{ name: "t" }] }), options);
    expect(Object.keys(unset).sort()).toEqual(["messages", "model", "tools"]);
  });

  it("puts max_output_tokens in max_tokens when the provider is configured for it", () => {
    const body = buildChatRequest(request({ messages: [user("x")], maxOutputTokens: 7 }), {
      ...options,
      maxTokensField: "max_tokens",
    });
    expect(body).toEqual({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }], max_tokens: 7 });
    expect(spec.errors(body)).toEqual([]);
  });

  it("maps tool choice modes, response formats and the json_schema subset", () => {
    const tools = [{ name: "t" }];
    const choice = (mode: ToolChoiceMode) =>
      buildChatRequest(request({ messages: [user("x")], tools, toolChoice: { choice: { case: "mode", value: mode } } }), options)
        .tool_choice;
    expect(choice(ToolChoiceMode.AUTO)).toBe("auto");
    expect(choice(ToolChoiceMode.NONE)).toBe("none");
    expect(choice(ToolChoiceMode.REQUIRED)).toBe("required");
    expect(choice(ToolChoiceMode.UNSPECIFIED)).toBeUndefined();

    const format = (init: MessageInitShape<typeof CompleteRequestSchema>["responseFormat"]) =>
      buildChatRequest(request({ messages: [user("x")], responseFormat: init }), options).response_format;
    expect(format({ format: { case: "text", value: {} } })).toEqual({ type: "text" });
    expect(format({ format: { case: "jsonObject", value: {} } })).toEqual({ type: "json_object" });
    expect(format({ format: { case: "jsonSchema", value: { name: "n", schema: { type: "object" } } } })).toEqual({
      type: "json_schema",
      json_schema: { name: "n", schema: { type: "object" } },
    });
    expect(format({})).toBeUndefined();
  });

  it("drops tool_choice auto/none and parallel_tool_calls when there are no tools (OpenAI rejects them)", () => {
    for (const mode of [ToolChoiceMode.AUTO, ToolChoiceMode.NONE]) {
      const body = buildChatRequest(
        request({ messages: [user("x")], toolChoice: { choice: { case: "mode", value: mode } }, parallelToolCalls: true }),
        options,
      );
      expect(body).toEqual({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }] });
    }
  });

  it("drops a tool message's name and a request message's reasoning, keeps other names", () => {
    const body = buildChatRequest(
      request({
        messages: [
          { role: Role.ASSISTANT, content: [text("a")], name: "bot", reasoning: "hidden" },
          { role: Role.TOOL, toolCallId: "c", content: [text("r")], name: "tool-name" },
        ],
      }),
      options,
    );
    expect(body.messages).toEqual([
      { role: "assistant", content: "a", name: "bot" },
      { role: "tool", tool_call_id: "c", content: "r" },
    ]);
  });

  it("rejects top_k, naming the field and the provider, before anything else", () => {
    expect(violations(() => buildChatRequest(request({ messages: [user("x")], topK: 40 }), options))).toEqual([
      { field: "top_k", description: "not supported by provider oai (openai)", reason: "UNSUPPORTED_BY_PROVIDER" },
    ]);
  });

  it("rejects images OpenAI cannot take, and names every bad field at once", () => {
    const image = (value: MessageInitShape<typeof CompleteRequestSchema>["messages"]) => value;
    const found = violations(() =>
      buildChatRequest(
        request({
          messages: image([
            { role: Role.USER, content: [{ part: { case: "image", value: {} } }] },
            {
              role: Role.USER,
              content: [
                {
                  part: { case: "image", value: { source: { case: "data", value: Uint8Array.of(1) }, mediaType: "image/tiff" } },
                },
              ],
            },
            {
              role: Role.TOOL,
              toolCallId: "c",
              content: [{ part: { case: "image", value: { source: { case: "url", value: "https://x/y.png" } } } }],
            },
          ]),
          topK: 5,
        }),
        options,
      ),
    );
    expect(found.map((v) => v.field)).toEqual([
      "messages[0].content[0].image",
      "messages[1].content[0].image.media_type",
      "messages[2].content[0].image",
      "top_k",
    ]);
    expect(found[2]!.description).toBe("images in tool messages are not supported by provider oai (openai)");
  });

  it("rejects a seed JSON cannot carry exactly", () => {
    const found = violations(() => buildChatRequest(request({ messages: [user("x")], seed: 2n ** 60n }), options));
    expect(found.map((v) => v.field)).toEqual(["seed"]);
    expect(buildChatRequest(request({ messages: [user("x")], seed: -(2n ** 53n - 1n) }), options).seed).toBe(
      Number.MIN_SAFE_INTEGER,
    );
  });

  it("handles every CompleteRequest field (a new proto field must be mapped or rejected here)", () => {
    // When this fails, decide what OpenAI does with the new field, in request.ts, then add it.
    expect(CompleteRequestSchema.fields.map((f) => f.name)).toEqual([
      "model",
      "messages",
      "temperature",
      "top_p",
      "max_output_tokens",
      "stop",
      "seed",
      "presence_penalty",
      "frequency_penalty",
      "top_k",
      "tools",
      "tool_choice",
      "parallel_tool_calls",
      "response_format",
      "metadata",
      "cache",
      "idempotency_key",
    ]);
  });
});
