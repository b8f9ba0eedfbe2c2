import { create, fromBinary, fromJsonString, toBinary, toJsonString, type JsonValue, type Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { CompleteRequestSchema, type CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import { randomJson, randomMessage, seeded } from "../../test/helpers/random-messages.js";
import { reasons } from "../errors/reasons.js";
import { countBinaryElements, minBytesPerElement } from "./binary-element-count.js";
import { createMethodJsonCodecs } from "./compiled-json-codec.js";
import { checkBinaryElements, checkJsonElements, countJsonElements, maxRequestElements } from "./element-budget.js";
import { parseBinary } from "./envelope.js";
import { strictUtf8Decoder } from "./strict-utf8.js";

// The lanes' request codec, as lane-routes.ts builds it (with create-server's options).
const { inputJson } = createMethodJsonCodecs(
  { input: CompleteRequestSchema, output: CompleteRequestSchema },
  {
    ignoreUnknownFields: false,
  },
);

/** Objects, arrays, members and items of a parsed JSON value: what countJsonElements counts in its text. */
function jsonElements(value: JsonValue): number {
  if (value === null || typeof value !== "object") return 0;
  const entries = Array.isArray(value) ? value : Object.values(value);
  return 1 + entries.length + entries.reduce<number>((sum, entry) => sum + jsonElements(entry), 0);
}

/** Field occurrences protobuf-es writes for a message (every field set; map entries with key and value). */
function binaryFields(message: ReflectMessage): number {
  let count = 0;
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    switch (field.fieldKind) {
      case "message":
        count += 1 + binaryFields(message.get(field));
        break;
      case "list":
        for (const item of message.get(field))
          count += 1 + (field.listKind === "message" ? binaryFields(item as ReflectMessage) : 0);
        break;
      case "map":
        for (const [, value] of message.get(field)) {
          count += 3 + (field.mapKind === "message" ? binaryFields(value as ReflectMessage) : 0);
        }
        break;
      default:
        count += 1;
    }
  }
  return count;
}

/** A parse's message as its encoding (base64: quick to compare at 4 MB), or its error's message. */
function outcome(parse: () => Message): { base64: string } | { error: string } {
  try {
    return { base64: Buffer.from(toBinary(CompleteRequestSchema, parse() as never)).toString("base64") };
  } catch (err) {
    return { error: (err as Error).message.replace(/^\[invalid_argument\] parse binary: /, "") };
  }
}

function refusal(run: () => unknown): ConnectError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected the request to be refused");
}

function expectOverBudget(run: () => unknown, format: "JSON" | "binary"): void {
  const error = refusal(run);
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.requestLimitExceeded);
  expect(error.rawMessage).toBe(
    format === "JSON"
      ? "request too complex: more than 65536 JSON elements (objects, arrays, members and items)"
      : "request too complex: more than 65536 protobuf fields",
  );
}

/** Bytes of `unit` repeated `count` times. */
function repeated(unit: readonly number[], count: number): Uint8Array {
  const bytes = new Uint8Array(unit.length * count);
  for (let i = 0; i < count; i++) bytes.set(unit, i * unit.length);
  return bytes;
}

function concat(...parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

function varint(value: number): number[] {
  const out: number[] = [];
  for (; value > 0x7f; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return out;
}

/** A length-delimited field. */
function field(tag: number, body: Uint8Array | readonly number[]): Uint8Array {
  return concat([tag], varint(body.length), body);
}

const emptyMessagesCount = 1_300_000;

/**
 * The heaviest legitimate request the other limits allow in practice: 2048 messages (text,
 * images, two tool calls per assistant turn, tool answers), 128 tools with JSON schemas of
 * 8 properties each, a JSON-schema answer format, 4 stop sequences, 16 metadata entries.
 */
function maximalRequest(): CompleteRequest {
  const schema = {
    type: "object",
    properties: Object.fromEntries(
      Array.from({ length: 8 }, (_, i) => [`p${i}`, { type: "string", description: `parameter ${i}`, enum: ["a", "b", "c"] }]),
    ),
    required: ["p0", "p1", "p2"],
    additionalProperties: false,
  };
  const text = (value: string) => ({ part: { case: "text" as const, value } });
  const messages: object[] = [{ role: 1, content: [text("You are a helpful assistant.")] }];
  for (let i = 1; i < 2048; i++) {
    if (i % 3 === 1) {
      const image = {
        part: { case: "image" as const, value: { source: { case: "url" as const, value: "https://example.com/a.png" } } },
      };
      messages.push({ role: 2, content: [text("What is in this picture?"), image] });
    } else if (i % 3 === 2) {
      const calls = [
        { id: `call_${i}a`, name: "tool_0", arguments: "{}" },
        { id: `call_${i}b`, name: "tool_1", arguments: '{"p0":"a"}' },
      ];
      messages.push({ role: 3, content: [text("Let me look.")], toolCalls: calls });
    } else {
      messages.push({ role: 4, toolCallId: `call_${i - 1}a`, content: [text("42")] });
    }
  }
  return create(CompleteRequestSchema, {
    model: "demo",
    messages,
    tools: Array.from({ length: 128 }, (_, i) => ({
      name: `tool_${i}`,
      description: "A tool.",
      parameters: schema,
      strict: true,
    })),
    stop: ["a", "b", "c", "d"],
    metadata: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`key${i}`, "value"])),
    responseFormat: { format: { case: "jsonSchema", value: { name: "answer", schema } } },
  } as never);
}

describe("countJsonElements", () => {
  it.each([
    ["{}", 1],
    ["[]", 1],
    ["{ \n\t}", 1],
    ['{"model":"m"}', 2],
    ["[1,2,3]", 4],
    ["[ 1 , 2 ]", 3],
    ["[[],[]]", 5],
    ["[[[]]]", 5],
    ['{"a":{"b":[null,{}]}}', 8],
    ['"text"', 0],
    ["42", 0],
  ])("counts objects, arrays, members and items: %s → %i", (text, count) => {
    expect(countJsonElements(text, 1000)).toBe(count);
  });

  it.each([
    ['{"a":"{[,]}"}', 2],
    ['{"a":"say \\"{[\\" twice, \\"]}\\""}', 2],
    ['["\\\\",1]', 3], // a string ending in an escaped backslash: the quote after it closes it
    ['["\\\\\\"",1]', 3], // \\ then \": the string goes on past that quote
    ['{"{":"}","[":"]",",":","}', 4],
  ])("does not count brackets, commas or quotes inside strings: %s", (text, count) => {
    expect(countJsonElements(text, 1000)).toBe(count);
  });

  it("counts what JSON.parse builds, never more than the text's length, on random JSON and requests", () => {
    const random = seeded(18);
    for (let i = 0; i < 2000; i++) {
      const value =
        i % 2 === 0
          ? randomJson(random)
          : toJsonString(CompleteRequestSchema, randomMessage(CompleteRequestSchema, random) as never);
      const json = typeof value === "string" && i % 2 === 1 ? (JSON.parse(value) as JsonValue) : value;
      for (const text of [JSON.stringify(json), JSON.stringify(json, null, 2)]) {
        const count = countJsonElements(text, Number.MAX_SAFE_INTEGER);
        expect(count, text).toBe(jsonElements(json));
        expect(count).toBeLessThanOrEqual(text.length);
      }
    }
  });

  it("stops just past the limit", () => {
    expect(countJsonElements(`[${"0,".repeat(999)}0]`, 10)).toBe(11);
  });
});

describe("countBinaryElements", () => {
  it("counts every field occurrence: nested messages, list items, map keys and values, Struct values", () => {
    const request = create(CompleteRequestSchema, {
      model: "m", // 1
      messages: [{ role: 1, content: [{ part: { case: "text", value: "hi" } }] }], // 1 + role 1 + content 1 + text 1
      tools: [{ name: "f", parameters: { a: [1, "x"] } }], // 1 + name 1 + parameters 1 + Struct (entry, key, value, list, 2 × (item, kind)) 8
      metadata: { k: "v" }, // entry, key, value: 3
    } as never);
    expect(countBinaryElements(CompleteRequestSchema, toBinary(CompleteRequestSchema, request), 1000)).toBe(19);
  });

  it("counts what protobuf-es writes, at most one per two bytes, on random requests", () => {
    const random = seeded(18);
    for (let i = 0; i < 2000; i++) {
      const message = randomMessage(CompleteRequestSchema, random);
      const bytes = toBinary(CompleteRequestSchema, message as never);
      const count = countBinaryElements(CompleteRequestSchema, bytes, Number.MAX_SAFE_INTEGER);
      expect(count).toBe(binaryFields(reflect(CompleteRequestSchema, fromBinary(CompleteRequestSchema, bytes))));
      expect(count * 2).toBeLessThanOrEqual(bytes.length);
    }
  });

  it("counts unknown fields — inside an unknown group too — and reads on after them", () => {
    const bytes = concat(
      [0xa0, 0x06, 0x96, 0x01], // field 100, varint
      [0xa0, 0x06, ...new Array(11).fill(0x80), 0x01], // and a 12-byte one: protobuf-es skips a varint of any length
      [0xa9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8], // field 101, fixed64
      [0xb5, 0x06, 1, 2, 3, 4], // field 102, fixed32
      [0xba, 0x06, 3, 0x12, 0x01, 0x00], // field 103, length-delimited: opaque, its bytes not counted
      [0xc3, 0x06, 0x08, 0x01, 0x12, 0x00, 0xc4, 0x06], // field 104, a group holding two fields
      field(0x0a, [0x6d]), // model "m": read after them
    );
    expect(countBinaryElements(CompleteRequestSchema, bytes, 1000)).toBe(9);
    expect((fromBinary(CompleteRequestSchema, bytes) as CompleteRequest).model).toBe("m");
  });

  it("counts each element of a packed list (and then needs one byte per element, not two)", () => {
    // FileDescriptorProto.public_dependency (10): repeated int32, packed or not.
    const values = Array.from({ length: 300 }, (_, i) => i);
    const packed = field(0x52, values.flatMap(varint));
    const unpacked = concat(...values.map((value) => [0x50, ...varint(value)]));
    for (const bytes of [packed, unpacked]) {
      expect(fromBinary(FileDescriptorProtoSchema, bytes).publicDependency).toEqual(values);
    }
    expect(countBinaryElements(FileDescriptorProtoSchema, packed, 1000)).toBe(301);
    expect(countBinaryElements(FileDescriptorProtoSchema, unpacked, 1000)).toBe(300);
    expect(minBytesPerElement(FileDescriptorProtoSchema)).toBe(1);
    expect(minBytesPerElement(CompleteRequestSchema)).toBe(2);
  });

  it("counts a message whose length runs past the end: protobuf-es reads its fields to the end before it fails", () => {
    const parts = repeated([0x12, 0x00], 100_000); // Message.content: empty parts
    const bytes = concat([0x12, 0xff, 0xff, 0xff, 0x7f], parts); // messages[0], 268 MB long
    expect(() => fromBinary(CompleteRequestSchema, bytes)).toThrow();
    expect(countBinaryElements(CompleteRequestSchema, bytes, Number.MAX_SAFE_INTEGER)).toBe(100_001);
  });

  it("stops only where protobuf-es throws: fields after any point it reads past are counted", () => {
    const random = seeded(1818);
    const tail = repeated([0x0a, 0x00], 3); // three more `model` fields
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = toBinary(CompleteRequestSchema, randomMessage(CompleteRequestSchema, random) as never);
      const mutated = Uint8Array.from(bytes);
      for (let j = 0; j < 1 + Math.floor(random() * 3); j++)
        mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
      const extended = concat(mutated, tail);
      try {
        fromBinary(CompleteRequestSchema, mutated);
        fromBinary(CompleteRequestSchema, extended);
      } catch {
        continue;
      }
      parsed++;
      const count = countBinaryElements(CompleteRequestSchema, mutated, Number.MAX_SAFE_INTEGER);
      expect(countBinaryElements(CompleteRequestSchema, extended, Number.MAX_SAFE_INTEGER)).toBe(count + 3);
    }
    expect(parsed).toBeGreaterThan(300);
  });
});

describe("the element budget (maxRequestElements)", () => {
  it("leaves ordinary requests as they were: the same message from the lanes' codecs as from protobuf-es", () => {
    const random = seeded(7);
    const requests = Array.from({ length: 300 }, () => randomMessage(CompleteRequestSchema, random));
    // One above the scan thresholds: a single text part of 4 MB, braces, quotes and escapes in it.
    const long = 'say "{[,]}" \\ '.repeat((4 * 1024 * 1024) / 16);
    requests.push(
      create(CompleteRequestSchema, { model: "m", messages: [{ content: [{ part: { case: "text", value: long } }] }] }),
    );
    for (const request of requests) {
      const json = toJsonString(CompleteRequestSchema, request as never);
      const bytes = toBinary(CompleteRequestSchema, request as never);
      // Random strings include a lone surrogate, which protobuf-es refuses: then the same error.
      const expected = outcome(() => fromJsonString(CompleteRequestSchema, json));
      expect(outcome(() => inputJson.parse(json))).toEqual(expected);
      expect(outcome(() => inputJson.parse(strictUtf8Decoder.decode(Buffer.from(json))))).toEqual(expected);
      expect(outcome(() => parseBinary(CompleteRequestSchema, bytes))).toEqual(
        outcome(() => fromBinary(CompleteRequestSchema, bytes)),
      );
    }
  });

  it("lets the heaviest legitimate request through, in JSON and in binary, with room to spare", () => {
    const request = maximalRequest();
    const json = toJsonString(CompleteRequestSchema, request);
    const bytes = toBinary(CompleteRequestSchema, request);
    // Both well over the thresholds, so both are counted: ~41k and ~43k elements.
    expect(json.length).toBeGreaterThan(maxRequestElements);
    expect(bytes.length).toBeGreaterThan(2 * maxRequestElements);
    expect(countJsonElements(json, maxRequestElements)).toBeLessThan(0.7 * maxRequestElements);
    expect(countBinaryElements(CompleteRequestSchema, bytes, maxRequestElements)).toBeLessThan(0.7 * maxRequestElements);
    const encoded = { base64: Buffer.from(bytes).toString("base64") };
    expect(outcome(() => inputJson.parse(json))).toEqual(encoded);
    expect(outcome(() => parseBinary(CompleteRequestSchema, bytes))).toEqual(encoded);
  });

  it("refuses 1.3M empty messages before parsing them, in JSON (lanes and connect-node) and in binary", () => {
    const json = `{"model":"demo","messages":[${new Array(emptyMessagesCount).fill("{}").join(",")}]}`;
    expectOverBudget(() => inputJson.parse(json), "JSON");
    expectOverBudget(() => strictUtf8Decoder.decode(Buffer.from(json)), "JSON");
    expectOverBudget(() => parseBinary(CompleteRequestSchema, repeated([0x12, 0x00], emptyMessagesCount)), "binary");
  });

  it("refuses other costly shapes: a Struct of many keys, repeated scalar fields, unknown fields", () => {
    const keys = Array.from({ length: 70_000 }, (_, i) => `"k${i}":0`).join(",");
    expectOverBudget(() => inputJson.parse(`{"model":"m","tools":[{"name":"f","parameters":{${keys}}}]}`), "JSON");
    expectOverBudget(() => inputJson.parse(`{"model":"m","stop":[${'"",'.repeat(70_000)}""]}`), "JSON");
    expectOverBudget(() => parseBinary(CompleteRequestSchema, repeated([0x0a, 0x00], 70_000)), "binary"); // model, again and again
    expectOverBudget(() => parseBinary(CompleteRequestSchema, repeated([0xf8, 0x07, 0x00], 70_000)), "binary"); // field 127, unknown
  });

  it("checks bodies from the limit up (JSON) and from twice the limit up (binary)", () => {
    expect(() => checkJsonElements("[0,0,0,0]", 4)).toThrow(ConnectError); // 5 elements, 9 characters
    expect(() => checkJsonElements("[0,0,0]", 4)).not.toThrow();
    expect(() => checkBinaryElements(CompleteRequestSchema, repeated([0x0a, 0x00], 5), 4)).toThrow(ConnectError);
    expect(() => checkBinaryElements(CompleteRequestSchema, repeated([0x0a, 0x00], 4), 4)).not.toThrow();
  });

  it("leaves bytes that are not a message to the parser's own INVALID_ARGUMENT", () => {
    const afterBadTag = concat(field(0x0a, [0x6d]), [0x07], repeated([0x12, 0x00], 100_000)); // wire type 7
    const truncated = concat(field(0x0a, repeated([0x61], 200_000)), [0x12, 0x05, 0x12]); // a message cut short
    // Struct → fields["k"] → Value.struct_value → Struct …: nested beyond protobuf-es's recursion limit (100).
    let deep: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < 60; i++) deep = field(0x0a, concat(field(0x0a, [0x6b]), field(0x12, field(0x2a, deep))));
    const deeplyNested = concat(field(0x5a, concat(field(0x0a, [0x66]), field(0x1a, deep))), repeated([0x12, 0x00], 100_000));
    for (const bytes of [afterBadTag, truncated, deeplyNested]) {
      const error = refusal(() => parseBinary(CompleteRequestSchema, bytes));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^parse binary: /);
      expect(error.findDetails(ErrorInfoSchema)).toEqual([]);
    }
  });
});
