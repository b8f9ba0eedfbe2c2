import {
  ScalarType,
  create,
  fromJson,
  fromJsonString,
  toJson,
  toJsonString,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonReadOptions,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
} from "@bufbuild/protobuf";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";
import { base64Encode, getTextEncoding } from "@bufbuild/protobuf/wire";
import { findDuplicateKey } from "./json-duplicate-keys.js";

export interface JsonCodecHooks {
  /** Called when a message was handed to protobuf-es (tests prove the plans are used). */
  onFallback?(direction: "parse" | "stringify"): void;
}

/** One message type's proto3 JSON, exactly as protobuf-es reads and writes it. */
export interface MessageJsonCodec {
  /** `fromJsonString(schema, text, options)`: the same message, or the same error. */
  parse(text: string): Message;
  /** `toJsonString(schema, message, options)`: the same string, or the same error. */
  stringify(message: Message): string;
}

/**
 * protobuf-es reads and writes JSON through its reflection API: a wrapper object (with two
 * Maps) per message, a Map and a Set per object read, a field lookup per key — a third of
 * a Connect JSON call's protobuf CPU and a good share of its garbage. These codecs walk
 * per-type plans built once instead and keep protobuf-es for everything unusual: any value
 * the plan is not sure of (a number given as a string, an int64, bytes, a null inside a
 * oneof, a well-known type's own JSON form, an unknown enum name…) hands the whole message
 * back to protobuf-es, which then answers — or fails — exactly as it always did. So the fast
 * path only ever takes inputs whose result is beyond doubt, and every error message is
 * protobuf-es's own. Only protobuf-es's default write options compile; other options (and
 * a registry, for extensions) use protobuf-es throughout.
 * Tests: compiled-json-codec.test.ts compares both on every recorded and generated case.
 */
export function createJsonCodec(
  schema: DescMessage,
  options: Partial<JsonReadOptions & JsonWriteOptions> = {},
  hooks: JsonCodecHooks = {},
): MessageJsonCodec {
  const { onFallback } = hooks;
  const readOptions = options;
  const ignoreUnknown = options.ignoreUnknownFields === true;
  const recursionLimit = options.recursionLimit ?? 100;
  const writeCompiles =
    !options.alwaysEmitImplicit && !options.enumAsInteger && !options.useProtoFieldName && options.registry === undefined;
  const readCompiles = options.registry === undefined;
  const prettySpaces = (options as { prettySpaces?: number }).prettySpaces ?? 0;
  const readers = new Map<DescMessage, MessageReader>();
  const writers = new Map<DescMessage, MessageWriter>();

  function readerOf(desc: DescMessage): MessageReader {
    let reader = readers.get(desc);
    if (reader === undefined) {
      // Set before compiling: recursive types find their own (lazy) entry.
      reader = compileReader(desc, { readerOf, ignoreUnknown, recursionLimit, readOptions });
      readers.set(desc, reader);
    }
    return reader;
  }

  function writerOf(desc: DescMessage): MessageWriter {
    let writer = writers.get(desc);
    if (writer === undefined) {
      writer = compileWriter(desc, { writerOf, options });
      writers.set(desc, writer);
    }
    return writer;
  }

  const rootReader = readCompiles ? readerOf(schema) : undefined;
  const rootWriter = writeCompiles ? writerOf(schema) : undefined;

  return {
    parse(text) {
      if (rootReader === undefined) return fromJsonString(schema, text, options);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        onFallback?.("parse");
        return fromJsonString(schema, text, options); // protobuf-es words the syntax error
      }
      if (findDuplicateKey(text) !== undefined) {
        onFallback?.("parse");
        return fromJsonString(schema, text, options);
      }
      try {
        return rootReader(json, 1);
      } catch (err) {
        if (err !== bail) throw err;
        onFallback?.("parse");
        // Already parsed and checked for duplicate keys: fromJson is fromJsonString's rest.
        return fromJson(schema, json as JsonValue, options);
      }
    },
    stringify(message) {
      if (rootWriter === undefined) return toJsonString(schema, message as never, options);
      let json: JsonValue;
      try {
        json = rootWriter(message);
      } catch (err) {
        if (err !== bail) throw err;
        onFallback?.("stringify");
        return toJsonString(schema, message as never, options);
      }
      return JSON.stringify(json, null, prettySpaces);
    },
  };
}

/** A method's request and response codecs, as the fast lanes keep them per route. */
export function createMethodJsonCodecs(
  method: { readonly input: DescMessage; readonly output: DescMessage },
  options: Partial<JsonReadOptions & JsonWriteOptions>,
): { readonly inputJson: MessageJsonCodec; readonly outputJson: MessageJsonCodec } {
  return { inputJson: createJsonCodec(method.input, options), outputJson: createJsonCodec(method.output, options) };
}

/** Thrown inside a plan when protobuf-es must decide; never escapes the codec. */
const bail: unique symbol = Symbol("sluice.json.bail");

type MessageReader = (json: unknown, depth: number) => Message;
type MessageWriter = (message: Message) => JsonValue;
type AnyRecord = Record<string, unknown>;

const int32Min = -0x80000000;
const int32Max = 0x7fffffff;
const uint32Max = 0xffffffff;

/** Well-known types have JSON forms of their own; proto2 `required` fields, rules of their own. */
function needsProtobufEs(desc: DescMessage): boolean {
  return desc.typeName.startsWith("google.protobuf.") || desc.fields.some((f) => f.presence === 3 /* LEGACY_REQUIRED */);
}

// ---- reading ----------------------------------------------------------------------------

interface ReaderDeps {
  readerOf(desc: DescMessage): MessageReader;
  ignoreUnknown: boolean;
  recursionLimit: number;
  readOptions: Partial<JsonReadOptions>;
}

/** Reads one field's JSON value into `target`, or throws `bail`. */
type FieldReader = (target: AnyRecord, json: unknown, depth: number) => void;

interface FieldPlan {
  readonly bit: number;
  /** The oneof's bit (every member shares it), or 0. */
  readonly oneofBit: number;
  readonly read: FieldReader;
}

function compileReader(desc: DescMessage, deps: ReaderDeps): MessageReader {
  if (needsProtobufEs(desc)) return delegateReader(desc, deps);
  // A bit per field and per oneof in one integer: duplicate and oneof checks without a Set.
  if (desc.fields.length + desc.oneofs.length > 30) return delegateReader(desc, deps);
  const byKey = new Map<string, FieldPlan>();
  desc.fields.forEach((field, index) => {
    const oneofBit = field.oneof ? 1 << (desc.fields.length + desc.oneofs.indexOf(field.oneof)) : 0;
    const plan: FieldPlan = { bit: 1 << index, oneofBit, read: fieldReader(field, deps) };
    byKey.set(field.name, plan);
    byKey.set(field.jsonName, plan);
  });
  const { ignoreUnknown, recursionLimit } = deps;
  return function readMessage(json, depth) {
    if (depth > recursionLimit) throw bail;
    if (json === null || typeof json !== "object" || Array.isArray(json)) throw bail;
    const target = create(desc) as unknown as AnyRecord;
    let seen = 0;
    for (const key in json) {
      const plan = byKey.get(key);
      if (plan === undefined) {
        if (ignoreUnknown && !(key.startsWith("[") && key.endsWith("]"))) continue;
        throw bail; // an error, or an extension: protobuf-es says which
      }
      // The same field by its proto and JSON name, or two members of one oneof.
      if ((seen & (plan.bit | plan.oneofBit)) !== 0) throw bail;
      seen |= plan.bit | plan.oneofBit;
      plan.read(target, (json as AnyRecord)[key], depth);
    }
    return target as unknown as Message;
  };
}

/** protobuf-es reads this type as a subtree, its recursion limit shifted to the subtree's depth. */
function delegateReader(desc: DescMessage, deps: ReaderDeps): MessageReader {
  return (json, depth) => {
    try {
      return fromJson(desc, json as JsonValue, { ...deps.readOptions, recursionLimit: deps.recursionLimit - depth + 1 });
    } catch {
      throw bail; // the whole message again, so the error names the field as protobuf-es does
    }
  };
}

function fieldReader(field: DescField, deps: ReaderDeps): FieldReader {
  const name = field.localName;
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const value = field.fieldKind === "scalar" ? scalarReader(field.scalar) : enumReader(field.enum);
      if (field.oneof) {
        const oneofName = field.oneof.localName;
        return (target, json) => {
          if (json === null) throw bail; // null rules differ by kind inside a oneof
          target[oneofName] = { case: name, value: value(json) };
        };
      }
      return (target, json) => {
        if (json !== null) target[name] = value(json); // null: the zero value, already there
      };
    }
    case "message": {
      const messageDesc = field.message;
      if (field.oneof) {
        const oneofName = field.oneof.localName;
        const value = messageValueReader(messageDesc, deps);
        return (target, json, depth) => {
          if (json === null) throw bail;
          target[oneofName] = { case: name, value: value(json, depth + 1) };
        };
      }
      const value = messageValueReader(messageDesc, deps);
      return (target, json, depth) => {
        // null resets a message field — except google.protobuf.Value, where it is a value.
        if (json === null) {
          if (messageDesc.typeName === "google.protobuf.Value") throw bail;
          return;
        }
        target[name] = value(json, depth + 1);
      };
    }
    case "list": {
      const item = listItemReader(field, deps);
      return (target, json, depth) => {
        if (json === null) return;
        if (!Array.isArray(json)) throw bail;
        const list = target[name] as unknown[];
        for (const element of json) list.push(item(element, depth));
      };
    }
    case "map": {
      // Only string keys with scalar values are planned; other maps are rare enough for protobuf-es.
      if (field.mapKey !== ScalarType.STRING || field.mapKind !== "scalar") {
        return () => {
          throw bail;
        };
      }
      const value = scalarReader(field.scalar);
      return (target, json) => {
        if (json === null) return;
        if (typeof json !== "object" || Array.isArray(json)) throw bail;
        const map = target[name] as AnyRecord;
        for (const key in json) {
          const entry = (json as AnyRecord)[key];
          if (entry === null || key === "__proto__" || !getTextEncoding().checkUtf8(key)) throw bail;
          map[key] = value(entry);
        }
      };
    }
  }
}

function listItemReader(field: DescField & { fieldKind: "list" }, deps: ReaderDeps): (json: unknown, depth: number) => unknown {
  switch (field.listKind) {
    case "scalar": {
      const value = scalarReader(field.scalar);
      return (json) => {
        if (json === null) throw bail;
        return value(json);
      };
    }
    case "enum": {
      const value = enumReader(field.enum);
      return (json) => {
        if (json === null) throw bail;
        return value(json);
      };
    }
    case "message": {
      const messageDesc = field.message;
      // A null item is an error, except in a list of google.protobuf.Value (where it is a value).
      if (messageDesc.typeName === "google.protobuf.Value") {
        return () => {
          throw bail;
        };
      }
      const value = messageValueReader(messageDesc, deps);
      return (json, depth) => {
        if (json === null) throw bail;
        return value(json, depth + 1);
      };
    }
  }
}

/**
 * A message-typed value as the generated types hold it ("local" form): a message — except
 * google.protobuf.Struct, held as the JSON object itself, and the wrapper types, held as
 * their primitive (those are left to protobuf-es).
 */
function messageValueReader(desc: DescMessage, deps: ReaderDeps): (json: unknown, depth: number) => unknown {
  if (desc.typeName === "google.protobuf.Struct") return (json, depth) => structLocal(json, depth, deps.recursionLimit);
  if (isWrapperTypeName(desc.typeName)) {
    return () => {
      throw bail;
    };
  }
  return (json, depth) => deps.readerOf(desc)(json, depth);
}

function isWrapperTypeName(typeName: string): boolean {
  return typeName.startsWith("google.protobuf.") && typeName.endsWith("Value") && typeName !== "google.protobuf.Value";
}

/**
 * A Struct read from JSON and turned back into the JsonObject a field holds: a deep copy,
 * under protobuf-es's rules — an object at the top, any JSON below it, each value one level
 * deeper than its parent for the recursion limit.
 */
function structLocal(json: unknown, depth: number, limit: number): unknown {
  if (depth > limit || json === null || typeof json !== "object" || Array.isArray(json)) throw bail;
  const copy: AnyRecord = {};
  for (const key in json) {
    if (key === "__proto__") throw bail;
    copy[key] = valueLocal((json as AnyRecord)[key], depth + 1, limit);
  }
  return copy;
}

function valueLocal(json: unknown, depth: number, limit: number): unknown {
  if (depth > limit) throw bail;
  if (json === null || typeof json !== "object") return json;
  if (Array.isArray(json)) {
    const list: unknown[] = new Array(json.length);
    for (let i = 0; i < json.length; i++) list[i] = valueLocal(json[i], depth + 1, limit);
    return list;
  }
  return structLocal(json, depth, limit);
}

/** The plain JSON form of a scalar, as protobuf-es accepts it; anything else bails. */
function scalarReader(scalar: ScalarType): (json: unknown) => unknown {
  switch (scalar) {
    case ScalarType.STRING:
      return (json) => {
        // protobuf-es refuses lone surrogates in string fields (its configured UTF-8 check).
        if (typeof json !== "string" || !getTextEncoding().checkUtf8(json)) throw bail;
        return json;
      };
    case ScalarType.BOOL:
      return (json) => {
        if (typeof json !== "boolean") throw bail;
        return json;
      };
    case ScalarType.DOUBLE:
      return (json) => {
        // JSON.parse turns 1e400 into Infinity, which protobuf-es refuses.
        if (typeof json !== "number" || !Number.isFinite(json)) throw bail;
        return json;
      };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return (json) => {
        if (typeof json !== "number" || !Number.isInteger(json) || json < int32Min || json > int32Max) throw bail;
        return json;
      };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return (json) => {
        if (typeof json !== "number" || !Number.isInteger(json) || json < 0 || json > uint32Max) throw bail;
        return json;
      };
    default:
      // float (range rules), 64-bit integers (bigint or string forms), bytes (base64).
      return () => {
        throw bail;
      };
  }
}

function enumReader(desc: DescEnum): (json: unknown) => number {
  if (desc.typeName === "google.protobuf.NullValue") {
    return () => {
      throw bail;
    };
  }
  const byName = new Map(desc.values.map((value) => [value.name, value.number]));
  const known = new Set(desc.values.map((value) => value.number));
  return (json) => {
    if (typeof json === "string") {
      const number = byName.get(json);
      if (number !== undefined) return number;
    } else if (typeof json === "number" && known.has(json)) {
      return json;
    }
    throw bail;
  };
}

// ---- writing ----------------------------------------------------------------------------

interface WriterDeps {
  writerOf(desc: DescMessage): MessageWriter;
  options: Partial<JsonWriteOptions>;
}

/** A field's JSON value, or undefined when protobuf-es would leave it out. */
type FieldWriter = (message: AnyRecord) => JsonValue | undefined;

function compileWriter(desc: DescMessage, deps: WriterDeps): MessageWriter {
  if (needsProtobufEs(desc)) {
    return (message) => {
      try {
        return toJson(desc, message as never, deps.options);
      } catch {
        throw bail;
      }
    };
  }
  const fields = [...desc.fields].sort((a, b) => a.number - b.number).map((field) => ({ key: field.jsonName, write: fieldWriter(field, deps) }));
  return function writeMessage(message) {
    const json: Record<string, JsonValue> = {};
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!;
      const value = field.write(message as unknown as AnyRecord);
      if (value !== undefined) json[field.key] = value;
    }
    return json;
  };
}

function fieldWriter(field: DescField, deps: WriterDeps): FieldWriter {
  const name = field.localName;
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const value = field.fieldKind === "scalar" ? scalarWriter(field.scalar) : enumWriter(field.enum);
      if (field.oneof) return oneofMember(field.oneof.localName, name, value);
      if (field.presence !== 2 /* IMPLICIT */) return explicit(name, value);
      if (field.fieldKind === "enum") {
        const zero = field.enum.values[0]!.number;
        return (message) => (message[name] === zero ? undefined : value(message[name]));
      }
      const scalar = field.scalar;
      return (message) => (isScalarZeroValue(scalar, message[name]) ? undefined : value(message[name]));
    }
    case "message": {
      const value = messageValueWriter(field.message, deps);
      if (field.oneof) return oneofMember(field.oneof.localName, name, value);
      return explicit(name, value);
    }
    case "list": {
      const item = listItemWriter(field, deps);
      return (message) => {
        const list = message[name];
        if (!Array.isArray(list)) throw bail;
        if (list.length === 0) return undefined;
        const json: JsonValue[] = new Array(list.length);
        for (let i = 0; i < list.length; i++) json[i] = item(list[i]);
        return json;
      };
    }
    case "map": {
      // Other key types are written in their canonical form ("007" → "7"): protobuf-es decides.
      if (field.mapKey !== ScalarType.STRING) {
        return () => {
          throw bail;
        };
      }
      const value =
        field.mapKind === "scalar"
          ? scalarWriter(field.scalar)
          : field.mapKind === "enum"
            ? enumWriter(field.enum)
            : messageValueWriter(field.message, deps);
      return (message) => {
        const map = message[name];
        if (map === null || typeof map !== "object") throw bail;
        let json: Record<string, JsonValue> | undefined;
        for (const key of Object.keys(map)) {
          json ??= {};
          json[key] = value((map as AnyRecord)[key]);
        }
        return json;
      };
    }
  }
}

function oneofMember(oneofName: string, name: string, value: (item: unknown) => JsonValue): FieldWriter {
  return (message) => {
    const oneof = message[oneofName] as { case: unknown; value: unknown } | undefined;
    if (oneof === undefined) throw bail;
    return oneof.case === name ? value(oneof.value) : undefined;
  };
}

/** Explicit presence: set when it is an own property that is not undefined (as protobuf-es checks). */
function explicit(name: string, value: (item: unknown) => JsonValue): FieldWriter {
  return (message) => {
    const item = message[name];
    if (item === undefined || !Object.prototype.hasOwnProperty.call(message, name)) return undefined;
    return value(item);
  };
}

function listItemWriter(field: DescField & { fieldKind: "list" }, deps: WriterDeps): (item: unknown) => JsonValue {
  switch (field.listKind) {
    case "scalar":
      return scalarWriter(field.scalar);
    case "enum":
      return enumWriter(field.enum);
    case "message":
      return messageValueWriter(field.message, deps);
  }
}

/**
 * A message-typed field's value. Well-known types in a field may be held in another form
 * than their message (Struct as a JsonObject, wrappers as their primitive): protobuf-es
 * writes those. Sluice's answers carry none.
 */
function messageValueWriter(desc: DescMessage, deps: WriterDeps): (item: unknown) => JsonValue {
  if (desc.typeName.startsWith("google.protobuf.")) {
    return () => {
      throw bail;
    };
  }
  return (item) => deps.writerOf(desc)(item as Message);
}

/** protobuf-es's scalar JSON forms; a value of the wrong type bails (protobuf-es words the error). */
function scalarWriter(scalar: ScalarType): (value: unknown) => JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
      return (value) => {
        if (typeof value !== "string") throw bail;
        return value;
      };
    case ScalarType.BOOL:
      return (value) => {
        if (typeof value !== "boolean") throw bail;
        return value;
      };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return (value) => {
        if (typeof value !== "number") throw bail;
        if (Number.isNaN(value)) return "NaN";
        if (value === Number.POSITIVE_INFINITY) return "Infinity";
        if (value === Number.NEGATIVE_INFINITY) return "-Infinity";
        return value;
      };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return (value) => {
        if (typeof value === "bigint" || typeof value === "string") return value.toString();
        if (typeof value === "number" && Number.isInteger(value)) return value.toString();
        throw bail;
      };
    case ScalarType.BYTES:
      return (value) => {
        if (!(value instanceof Uint8Array)) throw bail;
        return base64Encode(value);
      };
    default:
      // int32, sint32, sfixed32, uint32, fixed32: a number (range is not checked on write).
      return (value) => {
        if (typeof value !== "number") throw bail;
        return value;
      };
  }
}

function enumWriter(desc: DescEnum): (value: unknown) => JsonValue {
  if (desc.typeName === "google.protobuf.NullValue") {
    return () => {
      throw bail;
    };
  }
  const names = new Map(desc.values.map((value) => [value.number, value.name]));
  return (value) => {
    if (typeof value !== "number") throw bail;
    // An unknown number is written as the number, as protobuf-es does.
    return names.get(value) ?? value;
  };
}
