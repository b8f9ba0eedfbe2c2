import { describe, expect, it } from "vitest";
import {
  ScalarType,
  create,
  fromJsonString,
  toBinary,
  toJsonString,
  type DescField,
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

/** mulberry32: a small seeded generator, so every run checks the same cases. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const texts = ["", "Hello", "héllo 🌊", 'quote " and \\ backslash', "\u0000\u001f", "line\nbreak", "\ud800 lone"];

/** A random JSON value of any shape (for Struct fields and for type confusion). */
function randomJson(random: () => number, depth = 0): JsonValue {
  const kind = Math.floor(random() * (depth > 2 ? 5 : 7));
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return [0, -1, 1.5, 2 ** 32, -(2 ** 31), 1e21, 7][Math.floor(random() * 7)]!;
    case 3:
      return texts[Math.floor(random() * texts.length)]!;
    case 4:
      return ["1", "NaN", "-0", " 3", "ROLE_USER", "x"][Math.floor(random() * 6)]!;
    case 5:
      return Array.from({ length: Math.floor(random() * 3) }, () => randomJson(random, depth + 1));
    default: {
      const object: Record<string, JsonValue> = {};
      for (let i = Math.floor(random() * 3); i > 0; i--) object[`k${Math.floor(random() * 4)}`] = randomJson(random, depth + 1);
      return object;
    }
  }
}

/** A random, valid value for one scalar field, in the JS form protobuf-es uses. */
function randomScalar(scalar: ScalarType, random: () => number): unknown {
  switch (scalar) {
    case ScalarType.STRING:
      return texts[Math.floor(random() * texts.length)];
    case ScalarType.BOOL:
      return random() < 0.5;
    case ScalarType.DOUBLE:
      return [0, -0, 0.5, -3.25, 1e300, Number.NaN, Number.POSITIVE_INFINITY][Math.floor(random() * 7)];
    case ScalarType.UINT32:
      return [0, 1, 4096, 2 ** 32 - 1][Math.floor(random() * 4)];
    case ScalarType.INT64:
      return [0n, -5n, 2n ** 62n][Math.floor(random() * 3)];
    case ScalarType.BYTES:
      return new Uint8Array(Math.floor(random() * 5)).map((_, i) => i * 37);
    default:
      return Math.floor(random() * 100);
  }
}

/** A random message of `schema`: each field set or left out, lists and maps of 0–2 entries. */
function randomMessage(schema: DescMessage, random: () => number, depth = 0): Message {
  if (schema.typeName === "google.protobuf.Struct") {
    // A Struct field holds the JSON object itself.
    const object: Record<string, JsonValue> = {};
    for (let i = Math.floor(random() * 3); i > 0; i--) object[`p${i}`] = randomJson(random);
    return object as unknown as Message;
  }
  const message = create(schema) as unknown as Record<string, unknown>;
  const value = (field: DescField): unknown => {
    if (field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")) {
      return depth > 3 ? create(field.message!) : randomMessage(field.message!, random, depth + 1);
    }
    if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) {
      const values = field.enum!.values;
      // Now and then a number the enum does not name: written as the number.
      return random() < 0.1 ? 99 : values[Math.floor(random() * values.length)]!.number;
    }
    return randomScalar(field.scalar!, random);
  };
  for (const field of schema.fields) {
    if (random() < 0.4) continue;
    if (field.oneof) {
      if (random() < 0.5) message[field.oneof.localName] = { case: field.localName, value: value(field) };
      continue;
    }
    switch (field.fieldKind) {
      case "list":
        message[field.localName] = Array.from({ length: Math.floor(random() * 3) }, () => value(field));
        break;
      case "map":
        message[field.localName] = Object.fromEntries(
          Array.from({ length: Math.floor(random() * 3) }, (_, i) => [`key${i}`, randomScalar(field.scalar!, random)]),
        );
        break;
      default:
        message[field.localName] = value(field);
    }
  }
  return message as unknown as Message;
}

/** Changes one spot of a JSON value: a value of another type, a null, an unknown or aliased key. */
function mutate(json: JsonValue, random: () => number): JsonValue {
  if (json === null || typeof json !== "object") return randomJson(random);
  const copy: JsonValue = Array.isArray(json) ? [...json] : { ...json };
  const keys = Object.keys(copy);
  const choice = random();
  if (Array.isArray(copy)) {
    if (copy.length === 0 || choice < 0.2) copy.push(randomJson(random));
    else {
      const at = Math.floor(random() * copy.length);
      copy[at] = mutate(copy[at]!, random);
    }
    return copy;
  }
  if (keys.length === 0 || choice < 0.1) copy[random() < 0.5 ? "unknownField" : "tool_call_id"] = randomJson(random);
  else if (choice < 0.2) copy[keys[Math.floor(random() * keys.length)]!] = null;
  else if (choice < 0.3) {
    // The same field under its other name (camelCase ↔ snake_case).
    const key = keys[Math.floor(random() * keys.length)]!;
    const other = key.includes("_") ? key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) : key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    copy[other] = copy[key]!;
  } else {
    const key = keys[Math.floor(random() * keys.length)]!;
    copy[key] = random() < 0.7 ? mutate(copy[key]!, random) : randomJson(random);
  }
  return copy;
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
