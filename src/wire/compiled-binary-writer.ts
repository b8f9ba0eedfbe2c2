// One file of ~400 lines on purpose: the plan compiler and the writer share a const enum
// (`Kind`) that TypeScript inlines as numbers only within its module; split, every per-field
// kind check on the answer-writing hot path would become a property lookup.
import { ScalarType, toBinary, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";
import { envelope } from "./envelope.js";

/** One message type's protobuf binary encoding, byte for byte what protobuf-es's `toBinary` writes. */
export interface BinaryMessageWriter {
  /** The message in a length-prefixed envelope (gRPC / Connect streaming framing) with `flags`. */
  envelope(message: Message, flags?: number): Buffer;
}

export interface BinaryWriterHooks {
  /** Called when a message was handed to protobuf-es (tests prove the plans are used). */
  onFallback?(): void;
}

/**
 * protobuf-es's `toBinary` walks a message through its reflection API and a writer that
 * forks a chunk list per nested message, then copies every chunk into the result, which
 * the lanes copy once more into an envelope. These plans size the message first (each
 * nested message's length recorded once, in order), then write it straight into one
 * buffer behind the envelope's five bytes: the same bytes — fields by number, implicit zero
 * values left out, strings as Node's UTF-8 (what Sluice configures protobuf-es to use:
 * protobuf-text-encoding.ts). A type with anything the plans do not cover (maps, 64-bit
 * integers, packed lists, proto2 `required`, groups), a value of an unexpected type, unknown
 * fields or a well-known type in a field hands the whole message to protobuf-es, which then
 * writes — or fails — as it always did.
 * Tests: compiled-binary-writer.test.ts compares both on generated and malformed messages.
 */
export function createBinaryWriter(schema: DescMessage, hooks: BinaryWriterHooks = {}): BinaryMessageWriter {
  const plans = new Map<DescMessage, MessagePlan | null>();

  function planOf(desc: DescMessage): MessagePlan | null {
    if (plans.has(desc)) return plans.get(desc)!;
    const plan: MessagePlan = { fields: [] };
    plans.set(desc, plan); // before the fields: recursive types find their own entry
    const fields = compileFields(desc, planOf);
    if (fields === null) {
      plans.set(desc, null);
      return null;
    }
    plan.fields.push(...fields);
    return plan;
  }

  const root = planOf(schema);
  // A nested type without a plan only shows when a message of it is set: planOf is re-read then.
  // Nested message sizes and string byte lengths, in the order the write pass needs them.
  const sizes: number[] = [];

  return {
    envelope(message, flags = 0) {
      if (root !== null) {
        sizes.length = 0;
        try {
          const size = sizeOf(root, message as unknown as AnyRecord, sizes, planOf);
          const frame = Buffer.allocUnsafe(5 + size);
          frame[0] = flags;
          frame.writeUInt32BE(size, 1);
          const cursor = { at: 5, size: 0 };
          writeFields(root, message as unknown as AnyRecord, frame, cursor, sizes, planOf);
          return frame;
        } catch (err) {
          if (err !== bail) throw err;
        }
      }
      hooks.onFallback?.();
      return envelope(toBinary(schema, message as never), flags);
    },
  };
}

/** Thrown inside a plan when protobuf-es must write the message; never escapes the writer. */
const bail: unique symbol = Symbol("sluice.binary.bail");

type AnyRecord = Record<string, unknown>;
type PlanOf = (desc: DescMessage) => MessagePlan | null;

interface MessagePlan {
  readonly fields: FieldPlan[];
}

// biome-ignore lint/suspicious/noConstEnum: a const enum is inlined as numbers within this one module (the writer's hot path switches on it per field); it is never exported.
const enum Kind {
  String,
  Bytes,
  Bool,
  Double,
  Float,
  Int32,
  Uint32,
  Sint32,
  Fixed32,
  Sfixed32,
  Enum,
  Message,
}

interface FieldPlan {
  readonly localName: string;
  /** The oneof's local name when the field is a member, else undefined. */
  readonly oneof: string | undefined;
  readonly repeated: boolean;
  /** Implicit presence: the zero value is not written. */
  readonly implicit: boolean;
  readonly scalar: ScalarType | undefined;
  readonly kind: Kind;
  /** The field's tag as varint bytes. */
  readonly tag: readonly number[];
  readonly message: DescMessage | undefined;
  /** An enum's first value: its implicit zero. */
  readonly enumZero: number;
}

const IMPLICIT = 2;
const LEGACY_REQUIRED = 3;

/** The fields' plans in number order, or null when the type needs protobuf-es. */
function compileFields(desc: DescMessage, planOf: PlanOf): FieldPlan[] | null {
  const plans: FieldPlan[] = [];
  for (const field of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const plan = compileField(field);
    if (plan === null) return null;
    // Recursive types are planned lazily; a nested type without a plan bails when one is set.
    if (plan.message !== undefined && !plan.message.typeName.startsWith("google.protobuf.")) planOf(plan.message);
    plans.push(plan);
  }
  return plans;
}

function compileField(field: DescField): FieldPlan | null {
  if (field.presence === LEGACY_REQUIRED) return null;
  let kind: Kind;
  let scalar: ScalarType | undefined;
  let message: DescMessage | undefined;
  let wireType: number;
  switch (field.fieldKind) {
    case "map":
      return null;
    case "message":
      if (field.delimitedEncoding) return null;
      kind = Kind.Message;
      message = field.message;
      wireType = 2;
      break;
    case "enum":
      kind = Kind.Enum;
      wireType = 0;
      break;
    case "scalar":
      scalar = field.scalar;
      break;
    case "list":
      if (field.listKind === "message") {
        if (field.delimitedEncoding) return null;
        kind = Kind.Message;
        message = field.message;
        wireType = 2;
      } else if (field.packed) {
        return null;
      } else if (field.listKind === "enum") {
        kind = Kind.Enum;
        wireType = 0;
      } else {
        scalar = field.scalar;
      }
      break;
  }
  if (scalar !== undefined) {
    const scalarPlan = scalarKind(scalar);
    if (scalarPlan === null) return null;
    [kind, wireType] = scalarPlan;
  }
  return {
    localName: field.localName,
    oneof: field.oneof?.localName,
    repeated: field.fieldKind === "list",
    implicit: field.fieldKind !== "list" && field.oneof === undefined && field.presence === IMPLICIT,
    scalar,
    kind: kind!,
    tag: varintBytes(((field.number << 3) | wireType!) >>> 0),
    message,
    enumZero: field.enum?.values[0]?.number ?? 0,
  };
}

/** The writer kind and wire type of a scalar, or null for the 64-bit integers (left to protobuf-es). */
function scalarKind(scalar: ScalarType): [Kind, number] | null {
  switch (scalar) {
    case ScalarType.STRING:
      return [Kind.String, 2];
    case ScalarType.BYTES:
      return [Kind.Bytes, 2];
    case ScalarType.BOOL:
      return [Kind.Bool, 0];
    case ScalarType.DOUBLE:
      return [Kind.Double, 1];
    case ScalarType.FLOAT:
      return [Kind.Float, 5];
    case ScalarType.INT32:
      return [Kind.Int32, 0];
    case ScalarType.UINT32:
      return [Kind.Uint32, 0];
    case ScalarType.SINT32:
      return [Kind.Sint32, 0];
    case ScalarType.FIXED32:
      return [Kind.Fixed32, 5];
    case ScalarType.SFIXED32:
      return [Kind.Sfixed32, 5];
    default:
      return null;
  }
}

function varintBytes(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return bytes;
}

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

const int32Min = -0x80000000;
const int32Max = 0x7fffffff;
const uint32Max = 0xffffffff;
const float32Max = 3.4028234663852886e38;

/** The message's field values to write, as protobuf-es's `isSet` decides: undefined = not written. */
function presentValue(field: FieldPlan, message: AnyRecord): unknown {
  if (field.oneof !== undefined) {
    const oneof = message[field.oneof] as { case: unknown; value: unknown } | undefined;
    if (oneof === undefined) throw bail;
    return oneof.case === field.localName ? oneof.value : undefined;
  }
  const value = message[field.localName];
  if (field.repeated) {
    if (!Array.isArray(value)) throw bail;
    return value.length === 0 ? undefined : value;
  }
  if (field.implicit) {
    if (field.kind === Kind.Enum) return value === field.enumZero ? undefined : value;
    return isScalarZeroValue(field.scalar!, value) ? undefined : value;
  }
  // Explicit presence: an own property that is not undefined.
  return value === undefined || !Object.hasOwn(message, field.localName) ? undefined : value;
}

function sizeOf(plan: MessagePlan, message: AnyRecord, sizes: number[], planOf: PlanOf): number {
  const unknown = message.$unknown as unknown[] | undefined;
  if (unknown !== undefined && unknown.length > 0) throw bail;
  let size = 0;
  for (const field of plan.fields) {
    const value = presentValue(field, message);
    if (value === undefined) continue;
    if (field.repeated) {
      for (const item of value as unknown[]) size += field.tag.length + valueSize(field, item, sizes, planOf);
    } else {
      size += field.tag.length + valueSize(field, value, sizes, planOf);
    }
  }
  return size;
}

/** One value's encoded size (a length-delimited value's prefix included), after checking its type. */
function valueSize(field: FieldPlan, value: unknown, sizes: number[], planOf: PlanOf): number {
  switch (field.kind) {
    case Kind.String: {
      if (typeof value !== "string") throw bail;
      // Recorded like a message's size: the write pass reads it instead of measuring again.
      const length = Buffer.byteLength(value, "utf8");
      sizes.push(length);
      return varintSize(length) + length;
    }
    case Kind.Bytes:
      if (!(value instanceof Uint8Array)) throw bail;
      return varintSize(value.byteLength) + value.byteLength;
    case Kind.Bool:
      if (typeof value !== "boolean") throw bail;
      return 1;
    case Kind.Double:
      if (typeof value !== "number") throw bail;
      return 8;
    case Kind.Float:
      // protobuf-es refuses finite values outside float32's range.
      if (typeof value !== "number" || (Number.isFinite(value) && (value > float32Max || value < -float32Max))) throw bail;
      return 4;
    case Kind.Int32:
    case Kind.Enum:
      if (typeof value !== "number" || !Number.isInteger(value) || value < int32Min || value > int32Max) throw bail;
      return value < 0 ? 10 : varintSize(value);
    case Kind.Uint32:
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > uint32Max) throw bail;
      return varintSize(value);
    case Kind.Sint32:
      if (typeof value !== "number" || !Number.isInteger(value) || value < int32Min || value > int32Max) throw bail;
      return varintSize(((value << 1) ^ (value >> 31)) >>> 0);
    case Kind.Fixed32:
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > uint32Max) throw bail;
      return 4;
    case Kind.Sfixed32:
      if (typeof value !== "number" || !Number.isInteger(value) || value < int32Min || value > int32Max) throw bail;
      return 4;
    case Kind.Message: {
      const desc = field.message!;
      // Well-known types may be held in another form (Struct as a JsonObject): protobuf-es.
      if (desc.typeName.startsWith("google.protobuf.") || value === null || typeof value !== "object") throw bail;
      const plan = planOf(desc);
      if (plan === null) throw bail;
      // Reserve this message's slot before its children's, so the write pass reads them in order.
      const slot = sizes.length;
      sizes.push(0);
      const size = sizeOf(plan, value as AnyRecord, sizes, planOf);
      sizes[slot] = size;
      return varintSize(size) + size;
    }
  }
}

interface Cursor {
  at: number;
  /** The next entry of `sizes` (message sizes and string byte lengths, in write order) to read. */
  size: number;
}

function writeFields(plan: MessagePlan, message: AnyRecord, out: Buffer, cursor: Cursor, sizes: number[], planOf: PlanOf): void {
  for (const field of plan.fields) {
    const value = presentValue(field, message);
    if (value === undefined) continue;
    if (field.repeated) {
      for (const item of value as unknown[]) writeValue(field, item, out, cursor, sizes, planOf);
    } else {
      writeValue(field, value, out, cursor, sizes, planOf);
    }
  }
}

/** Writes the field's tag and one value; the size pass already checked every value's type. */
function writeValue(field: FieldPlan, value: unknown, out: Buffer, cursor: Cursor, sizes: number[], planOf: PlanOf): void {
  const { tag } = field;
  for (let i = 0; i < tag.length; i++) out[cursor.at++] = tag[i]!;
  switch (field.kind) {
    case Kind.String: {
      const length = sizes[cursor.size++]!;
      writeVarint(out, cursor, length);
      cursor.at += out.write(value as string, cursor.at, length, "utf8");
      return;
    }
    case Kind.Bytes: {
      const bytes = value as Uint8Array;
      writeVarint(out, cursor, bytes.byteLength);
      out.set(bytes, cursor.at);
      cursor.at += bytes.byteLength;
      return;
    }
    case Kind.Bool:
      out[cursor.at++] = value ? 1 : 0;
      return;
    case Kind.Double:
      cursor.at = out.writeDoubleLE(value as number, cursor.at);
      return;
    case Kind.Float:
      cursor.at = out.writeFloatLE(value as number, cursor.at);
      return;
    case Kind.Int32:
    case Kind.Enum:
      if ((value as number) < 0) writeNegativeVarint(out, cursor, value as number);
      else writeVarint(out, cursor, value as number);
      return;
    case Kind.Uint32:
      writeVarint(out, cursor, value as number);
      return;
    case Kind.Sint32:
      writeVarint(out, cursor, (((value as number) << 1) ^ ((value as number) >> 31)) >>> 0);
      return;
    case Kind.Fixed32:
      cursor.at = out.writeUInt32LE(value as number, cursor.at);
      return;
    case Kind.Sfixed32:
      cursor.at = out.writeInt32LE(value as number, cursor.at);
      return;
    case Kind.Message: {
      const size = sizes[cursor.size++]!;
      writeVarint(out, cursor, size);
      writeFields(planOf(field.message!)!, value as AnyRecord, out, cursor, sizes, planOf);
      return;
    }
  }
}

function writeVarint(out: Buffer, cursor: Cursor, value: number): void {
  while (value > 0x7f) {
    out[cursor.at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[cursor.at++] = value;
}

/** A negative int32 is sign-extended to 64 bits: always ten bytes. */
function writeNegativeVarint(out: Buffer, cursor: Cursor, value: number): void {
  let low = value >>> 0;
  for (let i = 0; i < 4; i++) {
    out[cursor.at++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  // Bits 28–31 of the low word, then the high word's ones.
  out[cursor.at++] = (low & 0x0f) | 0x70 | 0x80;
  for (let i = 0; i < 4; i++) out[cursor.at++] = 0xff;
  out[cursor.at++] = 0x01;
}
