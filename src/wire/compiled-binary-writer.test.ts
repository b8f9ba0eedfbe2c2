import { describe, expect, it } from "vitest";
import { create, createFileRegistry, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  CompleteRequestSchema,
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { FinishReason } from "../../gen/sluice/v1/chat_pb.js";
import { createBinaryWriter } from "./compiled-binary-writer.js";
import { envelope } from "./envelope.js";
import { randomMessage, seeded } from "../../test/helpers/random-messages.js";

function outcome<T>(run: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: run() };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** The writer's envelope holds exactly protobuf-es's bytes, or fails with its error; true when the plan wrote it. */
function expectSameBytes(schema: DescMessage, message: Message, flags = 0): boolean {
  let fellBack = false;
  const writer = createBinaryWriter(schema, { onFallback: () => (fellBack = true) });
  const expected = outcome(() => envelope(toBinary(schema, message as never), flags));
  const actual = outcome(() => writer.envelope(message, flags));
  expect(actual).toEqual(expected);
  return !fellBack;
}

/**
 * A message type with every scalar kind the plans cover (and some they leave to protobuf-es),
 * built from a descriptor so the test does not depend on Sluice's own contract using them.
 */
function scalarsSchema(): DescMessage {
  const type = (n: number) => ({ type: n, label: 1 });
  const file = create(FileDescriptorProtoSchema, {
    name: "scalars.proto",
    package: "test",
    syntax: "proto3",
    messageType: [
      {
        name: "Scalars",
        field: [
          { name: "d", number: 1, ...type(1) },
          { name: "f", number: 2, ...type(2) },
          { name: "i32", number: 5, ...type(5) },
          { name: "u32", number: 13, ...type(13) },
          { name: "s32", number: 17, ...type(17) },
          { name: "fx32", number: 7, ...type(7) },
          { name: "sfx32", number: 15, ...type(15) },
          { name: "b", number: 8, ...type(8) },
          { name: "s", number: 9, ...type(9) },
          { name: "by", number: 12, ...type(12) },
          { name: "big", number: 300, ...type(9) },
          { name: "names", number: 20, type: 9, label: 3 },
          { name: "child", number: 21, type: 11, label: 1, typeName: ".test.Scalars" },
          { name: "opt", number: 22, type: 5, label: 1, proto3Optional: true, oneofIndex: 0 },
        ],
        oneofDecl: [{ name: "_opt" }],
      },
    ],
  });
  return createFileRegistry(file, () => undefined).getMessage("test.Scalars")!;
}

const schemas = [CompleteResponseSchema, StreamCompleteResponseSchema, CompleteRequestSchema];

describe("compiled binary writer", () => {
  it("writes every generated message byte for byte as protobuf-es does", () => {
    const random = seeded(0xb1a5);
    const planned = new Map<DescMessage, number>(schemas.map((schema) => [schema, 0]));
    for (let round = 0; round < 900; round++) {
      const schema = schemas[round % schemas.length]!;
      if (expectSameBytes(schema, randomMessage(schema, random), round % 2 === 0 ? 0 : 0b10)) {
        planned.set(schema, planned.get(schema)! + 1);
      }
    }
    // Answers always take the plans; requests (a map field) are protobuf-es's.
    expect([...planned.values()]).toEqual([300, 300, 0]);
  });

  it("writes every scalar kind, negative and extreme values, long strings and nesting as protobuf-es does", () => {
    const schema = scalarsSchema();
    const values: Record<string, unknown>[] = [
      {},
      { d: -0, f: 1.5, i32: -1, u32: 4294967295, s32: -2147483648, fx32: 4294967295, sfx32: -5, b: true },
      {
        d: Number.NaN,
        f: Number.POSITIVE_INFINITY,
        i32: -2147483648,
        s32: 2147483647,
        s: "x".repeat(300),
        by: new Uint8Array(200),
      },
      { s: "\ud800 lone 🌊", names: ["", "a", "b".repeat(130)], child: { i32: 300, child: { s: "deep" } } },
      { opt: 0 },
      { opt: -7, i32: 2 ** 31 - 1 },
    ];
    for (const init of values) {
      const message = create(schema, init);
      expect(
        expectSameBytes(schema, message),
        JSON.stringify(init, (_, v) => (typeof v === "bigint" ? String(v) : v)),
      ).toBe(true);
    }
  });

  it("hands values of the wrong type, out of range or unknown fields to protobuf-es, with its own error", () => {
    const schema = scalarsSchema();
    for (const init of [
      { i32: 1.5 },
      { u32: -1 },
      { f: 1e39 },
      { s: 5 },
      { b: "yes" },
      { by: "AAA" },
      { names: ["a", 1] },
      { child: 5 },
    ]) {
      const message = create(schema);
      Object.assign(message, init);
      expect(expectSameBytes(schema, message)).toBe(false);
    }
    const withUnknown = create(CompleteResponseSchema, { id: "a" });
    withUnknown.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
    expect(expectSameBytes(CompleteResponseSchema, withUnknown)).toBe(false);
  });

  it("writes unknown enum numbers, negative ones as ten-byte varints, as protobuf-es does", () => {
    for (const finishReason of [42, -1, -2147483648]) {
      expect(
        expectSameBytes(CompleteResponseSchema, create(CompleteResponseSchema, { finishReason: finishReason as FinishReason })),
      ).toBe(true);
    }
  });
});
