import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

/**
 * Counts the fields of a binary message — every field occurrence, nested ones, map entries'
 * keys and values, unknown fields and each element of a packed list included — the way
 * protobuf-es's `fromBinary` will read them, without reading them: one pass over the bytes,
 * no allocation per field. It mirrors protobuf-es 2.x's reader (from-binary.js), which
 * reads a known field by its declared type whatever its wire type says, so this walks the
 * same bytes as the same things the parser will.
 *
 * It stops as soon as the count passes `limit`, and where protobuf-es throws (a bad tag, a
 * truncated value, an unmatched end-group, nesting beyond its recursion limit): the parser
 * then fails at that same point, having read no more fields than were counted.
 */
export function countBinaryElements(schema: DescMessage, bytes: Uint8Array, limit: number): number {
  const scan = new BinaryScan(bytes, limit);
  scan.message(planOf(schema), 0, bytes.length);
  return scan.count;
}

/**
 * The fewest bytes one counted field takes in `schema`'s messages: 2 (its tag, and its value
 * or its end-group tag) — 1 when a message reachable from it has a packed-capable list,
 * whose elements count one each. A body of at most `limit` times this many bytes cannot
 * hold more than `limit` fields.
 */
export function minBytesPerElement(schema: DescMessage): number {
  const plan = planOf(schema);
  plan.minElementBytes ??= reachesPackable(schema, new Set()) ? 1 : 2;
  return plan.minElementBytes;
}

/** protobuf-es's default `recursionLimit` for `fromBinary` (parseBinary passes no options). */
const recursionLimit = 100;

const varint = 0;
const bit64 = 1;
const lengthDelimited = 2;
const startGroup = 3;
const endGroup = 4;
const bit32 = 5;

const kindScalar = 0;
const kindMessage = 1;
const kindList = 2;
const kindMap = 3;

/** How protobuf-es reads one field (one shape for every field: the walk stays monomorphic). */
interface FieldPlan {
  readonly kind: number;
  readonly number: number;
  /** A scalar's or scalar list's type (enums read as INT32), a map's value type. */
  readonly scalar: ScalarType;
  /** A map's key type. */
  readonly key: ScalarType;
  /** The message type of a message field, message list or message map value. */
  readonly message: DescMessage | undefined;
  readonly delimited: boolean;
  plan: MessagePlan | undefined;
}

interface MessagePlan {
  /** By field number. */
  readonly fields: (FieldPlan | undefined)[];
  minElementBytes: number | undefined;
}

// Plans are derived from descriptors alone (immutable, built once per process), so one
// cache serves every caller; built on the first scan of a type, i.e. the first large body.
const plans = new WeakMap<DescMessage, MessagePlan>();

function planOf(desc: DescMessage): MessagePlan {
  let plan = plans.get(desc);
  if (plan === undefined) {
    const fields: (FieldPlan | undefined)[] = [];
    for (const field of desc.fields) fields[field.number] = fieldPlan(field);
    plan = { fields, minElementBytes: undefined };
    plans.set(desc, plan);
  }
  return plan;
}

function fieldPlan(field: DescField): FieldPlan {
  const plan = (kind: number, scalar: ScalarType, message?: DescMessage, delimited = false, key = ScalarType.INT32) => ({
    kind,
    number: field.number,
    scalar,
    key,
    message,
    delimited,
    plan: undefined,
  });
  switch (field.fieldKind) {
    case "scalar":
      return plan(kindScalar, field.scalar);
    case "enum":
      return plan(kindScalar, ScalarType.INT32);
    case "message":
      return plan(kindMessage, ScalarType.INT32, field.message, field.delimitedEncoding);
    case "list":
      return field.listKind === "message"
        ? plan(kindList, ScalarType.INT32, field.message, field.delimitedEncoding)
        : plan(kindList, field.scalar ?? ScalarType.INT32);
    case "map":
      return plan(kindMap, field.scalar ?? ScalarType.INT32, field.message, false, field.mapKey);
  }
}

function reachesPackable(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return false;
  seen.add(desc);
  for (const field of desc.fields) {
    if (field.fieldKind === "list" && field.listKind !== "message") {
      if (field.scalar !== ScalarType.STRING && field.scalar !== ScalarType.BYTES) return true;
    }
    if (field.message !== undefined && reachesPackable(field.message, seen)) return true;
  }
  return false;
}

/** Each method returns false to stop: the count passed the limit, or protobuf-es throws here. */
class BinaryScan {
  pos = 0;
  count = 0;
  private depth = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly limit: number,
  ) {}

  /** readMessage: up to `length` bytes on, or (`groupNumber` > 0) to the matching end-group tag. */
  message(plan: MessagePlan, groupNumber: number, length: number): boolean {
    if (++this.depth > recursionLimit) return false;
    const end = groupNumber > 0 ? this.buf.length : this.pos + length;
    let tag = -1;
    while (this.pos < end) {
      tag = this.tag();
      if (tag < 0) return false;
      if (groupNumber > 0 && (tag & 7) === endGroup) break;
      if (++this.count > this.limit) return false;
      const field = plan.fields[tag >>> 3];
      const ok = field === undefined ? this.skip(tag & 7, tag >>> 3, recursionLimit - this.depth) : this.field(field, tag & 7);
      if (!ok) return false;
    }
    if (groupNumber > 0 && (tag < 0 || (tag & 7) !== endGroup || tag >>> 3 !== groupNumber)) return false;
    this.depth--;
    return true;
  }

  /** readField: by the field's declared type; only a list looks at the wire type (packed or not). */
  private field(field: FieldPlan, wireType: number): boolean {
    switch (field.kind) {
      case kindScalar:
        return this.scalar(field.scalar);
      case kindMessage:
        return this.messageField(field);
      case kindList:
        if (field.message !== undefined) return this.messageField(field);
        if (wireType === lengthDelimited && field.scalar !== ScalarType.STRING && field.scalar !== ScalarType.BYTES) {
          return this.packed(field.scalar);
        }
        return this.scalar(field.scalar);
      default:
        return this.mapEntry(field);
    }
  }

  private messageField(field: FieldPlan): boolean {
    field.plan ??= planOf(field.message!);
    if (field.delimited) return this.message(field.plan, field.number, 0);
    const length = this.varint32();
    return length >= 0 && this.message(field.plan, 0, length);
  }

  private packed(type: ScalarType): boolean {
    const length = this.varint32();
    if (length < 0) return false;
    const end = this.pos + length;
    while (this.pos < end) {
      if (++this.count > this.limit || !this.scalar(type)) return false;
    }
    return true;
  }

  /** readMapEntry: field 1 the key, 2 the value; any other tag is read and passed over (its value is not skipped). */
  private mapEntry(field: FieldPlan): boolean {
    const length = this.varint32();
    if (length < 0) return false;
    const end = this.pos + length;
    while (this.pos < end) {
      const tag = this.tag();
      if (tag < 0) return false;
      const number = tag >>> 3;
      if (number !== 1 && number !== 2) continue;
      if (++this.count > this.limit) return false;
      let ok: boolean;
      if (number === 1) {
        ok = this.scalar(field.key);
      } else if (field.message !== undefined) {
        field.plan ??= planOf(field.message);
        const valueLength = this.varint32();
        ok = valueLength >= 0 && this.message(field.plan, 0, valueLength);
      } else {
        ok = this.scalar(field.scalar);
      }
      if (!ok) return false;
    }
    return true;
  }

  /** readScalar's bytes. */
  private scalar(type: ScalarType): boolean {
    switch (type) {
      case ScalarType.STRING:
      case ScalarType.BYTES: {
        const length = this.varint32();
        return length >= 0 && (this.pos += length) <= this.buf.length;
      }
      case ScalarType.DOUBLE:
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        return (this.pos += 8) <= this.buf.length;
      case ScalarType.FLOAT:
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
        return (this.pos += 4) <= this.buf.length;
      default:
        return this.varint32() >= 0;
    }
  }

  /** BinaryReader.skip, for an unknown field; the fields inside an unknown group count too. */
  private skip(wireType: number, number: number, depthLeft: number): boolean {
    const buf = this.buf;
    switch (wireType) {
      case varint: {
        // Unbounded length, as protobuf-es skips it.
        while (this.pos < buf.length) if ((buf[this.pos++]! & 0x80) === 0) return true;
        return false;
      }
      case bit64:
        return (this.pos += 8) <= buf.length;
      case bit32:
        return (this.pos += 4) <= buf.length;
      case lengthDelimited: {
        const length = this.varint32();
        return length >= 0 && (this.pos += length) <= buf.length;
      }
      case startGroup: {
        if (depthLeft <= 0) return false;
        for (;;) {
          const tag = this.tag();
          if (tag < 0) return false;
          if ((tag & 7) === endGroup) return tag >>> 3 === number;
          if (++this.count > this.limit || !this.skip(tag & 7, tag >>> 3, depthLeft - 1)) return false;
        }
      }
      default:
        return false; // an end-group where none is open
    }
  }

  /** BinaryReader.tag: a uint32 varint of at most 5 bytes, field number ≥ 1, wire type ≤ 5; -1 where it throws. */
  private tag(): number {
    const start = this.pos;
    const tag = this.varint32();
    if (tag < 0) return -1;
    const length = this.pos - start;
    if (length > 5 || (length === 5 && this.buf[this.pos - 1]! > 0x0f)) return -1;
    return tag >>> 3 === 0 || (tag & 7) > 5 ? -1 : tag;
  }

  /** varint32read (and varint64read's length): at most 10 bytes; -1 where it throws (too long, or past the end). */
  private varint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let result = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) return -1;
      const b = buf[pos++]!;
      if (i < 4) result |= (b & 0x7f) << (7 * i);
      else if (i === 4) result |= (b & 0x0f) << 28;
      if ((b & 0x80) === 0) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    return -1;
  }
}
