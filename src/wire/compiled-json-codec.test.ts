import { describe, expect, it } from "vitest";
import {
  create,
  fromJsonString,
  toBinary,
  toJsonString,
  type DescMessage,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import {
  CompleteRequestSchema,
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { FinishReason } from "../../gen/sluice/v1/chat_pb.js";
import { createJsonCodec } from "./compiled-json-codec.js";
import { mutate, randomMessage, seeded } from "../../test/helpers/random-messages.js";

type Options = { ignoreUnknownFields?: boolean; recursionLimit?: number };

/** Outcome of a parse or stringify: the value, or the error's message. */
function outcome<T>(run: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: run() };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** The codec reads `text` exactly as protobuf-es does: the same message, or the same error. */
function expectSameParse(schema: DescMessage, text: string, options: Options = {}): boolean {
  let fellBack = false;
  const codec = createJsonCodec(schema, options, { onFallback: () => (fellBack = true) });
  const expected = outcome(() => fromJsonString(schema, text, options));
  const actual = outcome(() => codec.parse(text));
  if (!expected.ok) {
    expect(actual, text).toEqual(expected);
    return !fellBack;
  }
  expect(actual.ok, `${text}: ${actual.ok ? "" : actual.error}`).toBe(true);
  const message = (actual as { value: Message }).value;
  // Compared by their encodings: equals() calls NaN unequal to itself.
  expect(toBinary(schema, message as never)).toEqual(toBinary(schema, expected.value as never));
  expect(toJsonString(schema, message as never)).toBe(toJsonString(schema, expected.value as never));
  return !fellBack;
}

/** The codec writes `message` exactly as protobuf-es does: the same string, or the same error. */
function expectSameStringify(schema: DescMessage, message: Message): boolean {
  let fellBack = false;
  const codec = createJsonCodec(schema, {}, { onFallback: () => (fellBack = true) });
  const expected = outcome(() => toJsonString(schema, message as never));
  expect(outcome(() => codec.stringify(message))).toEqual(expected);
  return !fellBack;
}

const schemas = [CompleteRequestSchema, CompleteResponseSchema, StreamCompleteResponseSchema];

describe("compiled JSON codec", () => {
  it("reads typical and edge-case requests exactly as protobuf-es does", () => {
    const cases = [
      '{"model":"bench","messages":[{"role":"ROLE_USER","content":[{"text":"Hello"}]}]}',
      '{"model":"m","messages":[{"role":2,"content":[{"text":"a"},{"image":{"url":"https://x/y.png","detail":"IMAGE_DETAIL_LOW"}}]}]}',
      '{"model":"m","messages":[{"role":"ROLE_TOOL","tool_call_id":"c1","content":[{"text":"42"}]}]}',
      '{"model":"m","messages":[{"role":"ROLE_TOOL","toolCallId":"c1","tool_call_id":"c2"}]}',
      '{"model":"m","temperature":0.2,"topP":1,"maxOutputTokens":256,"stop":["\\n","END"],"seed":"42","presencePenalty":-0.5}',
      '{"model":"m","seed":42}',
      '{"model":"m","maxOutputTokens":"256"}',
      '{"model":"m","maxOutputTokens":-1}',
      '{"model":"m","maxOutputTokens":4294967296}',
      '{"model":"m","maxOutputTokens":1.5}',
      '{"model":"m","temperature":1e400}',
      '{"model":"m","temperature":"NaN"}',
      '{"model":"m","temperature":null,"tools":null,"toolChoice":null,"metadata":null}',
      '{"model":"m","tools":[{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}]}',
      '{"model":"m","toolChoice":{"mode":"TOOL_CHOICE_MODE_REQUIRED"}}',
      '{"model":"m","toolChoice":{"mode":"TOOL_CHOICE_MODE_AUTO","toolName":"f"}}',
      '{"model":"m","toolChoice":{"mode":null,"toolName":"f"}}',
      '{"model":"m","toolChoice":{"toolName":null}}',
      '{"model":"m","responseFormat":{"jsonSchema":{"name":"s","schema":{"type":"object"},"strict":false}}}',
      '{"model":"m","responseFormat":{"jsonObject":{}}}',
      '{"model":"m","responseFormat":{"text":{"x":1}}}',
      '{"model":"m","metadata":{"team":"search","trace":"abc"}}',
      '{"model":"m","metadata":{"team":1}}',
      '{"model":"m","metadata":{"team":null}}',
      '{"model":"m","metadata":{"__proto__":"x"}}',
      '{"model":"m","messages":[{"role":"ROLE_NOPE"}]}',
      '{"model":"m","messages":[{"role":17}]}',
      '{"model":"m","messages":[null]}',
      '{"model":"m","messages":{"role":1}}',
      '{"model":"m","stop":["a",null]}',
      '{"model":"m","messages":[{"content":[{"image":{"data":"aGVsbG8=","mediaType":"image/png"}}]}]}',
      '{"model":"m","messages":[{"content":[{"image":{"data":"!!"}}]}]}',
      '{"model":"m","temprature":0.5}',
      '{"model":"m","[sluice.ext]":1}',
      '{"model":"m","model":"n"}',
      '{"model":"m","mod\\u0065l":"n"}',
      '{"model":"m","messages":[{"role":1,"role":2}]}',
      '{"model":"m","messages":[{"name":"a"},{"name":"b"}]}',
      '{"model":"m\\"x","messages":[{"name":"\\\\"}],"stop":["\\\\\\"" ]}',
      '{"model":true}',
      "[]",
      "null",
      '"text"',
      "{",
      '{"model":"m",}',
      "",
    ];
    const compiled = cases.filter((text) => expectSameParse(CompleteRequestSchema, text));
    // The everyday shapes take the compiled plans, Struct parameters and proto field names included.
    expect(compiled).toEqual(expect.arrayContaining([cases[0], cases[1], cases[2], cases[13], cases[18], cases[21]]));
  });

  it("honours ignoreUnknownFields and the recursion limit as protobuf-es does", () => {
    expectSameParse(CompleteRequestSchema, '{"model":"m","temprature":0.5,"[x.y]":1}', { ignoreUnknownFields: true });
    expectSameParse(CompleteRequestSchema, '{"model":"m","messages":[{"role":"ROLE_NOPE"}]}', { ignoreUnknownFields: true });
    let nested = '"leaf"';
    for (let i = 0; i < 120; i++) nested = `{"a":${nested}}`;
    const deep = `{"model":"m","tools":[{"name":"f","parameters":${nested}}]}`;
    expectSameParse(CompleteRequestSchema, deep);
    for (const recursionLimit of [3, 4, 5, 6, 8]) {
      expectSameParse(CompleteRequestSchema, '{"model":"m","tools":[{"parameters":{"a":{"b":{"c":1}}}}]}', { recursionLimit });
      expectSameParse(CompleteRequestSchema, '{"messages":[{"content":[{"text":"x"}]}]}', { recursionLimit });
    }
  });

  it("reads every generated message, and thousands of mutations of them, as protobuf-es does", () => {
    const random = seeded(0x5eed);
    let checked = 0;
    let compiledReads = 0;
    for (let round = 0; round < 400; round++) {
      const schema = schemas[round % schemas.length]!;
      const json = JSON.parse(toJsonString(schema, randomMessage(schema, random) as never)) as JsonValue;
      if (expectSameParse(schema, JSON.stringify(json))) compiledReads++;
      let mutated = json;
      for (let step = 0; step < 6; step++) {
        mutated = mutate(mutated, random);
        expectSameParse(schema, JSON.stringify(mutated));
        checked++;
      }
    }
    expect(checked).toBe(2400);
    // Most generated messages are plain (no int64 or bytes set): the plans, not protobuf-es, read them.
    expect(compiledReads).toBeGreaterThan(100);
  });

  it("writes every generated message exactly as protobuf-es does", () => {
    const random = seeded(0xc0de);
    let compiledWrites = 0;
    for (let round = 0; round < 600; round++) {
      const schema = schemas[round % schemas.length]!;
      if (expectSameStringify(schema, randomMessage(schema, random))) compiledWrites++;
    }
    // Requests with a Struct set go to protobuf-es; answers never do.
    expect(compiledWrites).toBeGreaterThan(400);
  });

  it("writes zero values, unknown enum numbers and special doubles as protobuf-es does", () => {
    const response = create(CompleteResponseSchema, {
      id: "",
      finishReason: 0,
      usage: { inputTokens: 0, outputTokens: 7 },
      message: { role: 3, content: [{ part: { case: "text", value: "" } }], toolCalls: [] },
    });
    expectSameStringify(CompleteResponseSchema, response);
    expectSameStringify(CompleteResponseSchema, create(CompleteResponseSchema, { finishReason: 42 as FinishReason }));
    const request = create(CompleteRequestSchema, { temperature: Number.NaN, topP: -0, seed: 0n, metadata: {} });
    expectSameStringify(CompleteRequestSchema, request);
    expectSameStringify(CompleteRequestSchema, create(CompleteRequestSchema, { presencePenalty: Number.NEGATIVE_INFINITY }));
  });

  it("fails on a malformed message with protobuf-es's own error", () => {
    const wrongType = create(CompleteResponseSchema, { id: "x" });
    (wrongType as unknown as { id: unknown }).id = 5;
    expectSameStringify(CompleteResponseSchema, wrongType);
    const badEnum = create(CompleteResponseSchema, {});
    (badEnum as unknown as { finishReason: unknown }).finishReason = "STOP";
    expectSameStringify(CompleteResponseSchema, badEnum);
    const badList = create(CompleteRequestSchema, {});
    (badList as unknown as { stop: unknown }).stop = ["a", 1];
    expectSameStringify(CompleteRequestSchema, badList);
  });

  it("falls back to protobuf-es entirely for options it does not compile", () => {
    const message = create(CompleteResponseSchema, { id: "a", finishReason: 1 });
    for (const options of [{ alwaysEmitImplicit: true }, { enumAsInteger: true }, { useProtoFieldName: true }]) {
      expect(createJsonCodec(CompleteResponseSchema, options).stringify(message)).toBe(
        toJsonString(CompleteResponseSchema, message, options),
      );
    }
  });
});
