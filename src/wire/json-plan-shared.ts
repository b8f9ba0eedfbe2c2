import type { DescMessage, JsonValue, Message } from "@bufbuild/protobuf";

// What the compiled JSON plans share (compiled-json-codec.ts builds them; json-read-plan.ts and json-write-plan.ts).

/** Thrown inside a plan when protobuf-es must decide; never escapes the codec. */
export const bail: unique symbol = Symbol("sluice.json.bail");

/** The plan for what a plan never takes: protobuf-es decides every time. */
export function alwaysBail(): never {
  throw bail;
}

export type MessageReader = (json: unknown, depth: number) => Message;
export type MessageWriter = (message: Message) => JsonValue;
export type AnyRecord = Record<string, unknown>;

export const int32Min = -0x80000000;
export const int32Max = 0x7fffffff;
export const uint32Max = 0xffffffff;

/** Well-known types have JSON forms of their own; proto2 `required` fields, rules of their own. */
export function needsProtobufEs(desc: DescMessage): boolean {
  return desc.typeName.startsWith("google.protobuf.") || desc.fields.some((f) => f.presence === 3 /* LEGACY_REQUIRED */);
}
