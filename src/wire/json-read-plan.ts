import {
  ScalarType,
  create,
  fromJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonReadOptions,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import {
  alwaysBail,
  bail,
  int32Max,
  int32Min,
  needsProtobufEs,
  uint32Max,
  type AnyRecord,
  type MessageReader,
} from "./json-plan-shared.js";

/** Reading proto3 JSON into a message by per-type plans (compiled-json-codec.ts explains when they bail). */

export interface ReaderDeps {
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

export function compileReader(desc: DescMessage, deps: ReaderDeps): MessageReader {
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
      const value = messageValueReader(messageDesc, deps);
      if (field.oneof) {
        const oneofName = field.oneof.localName;
        return (target, json, depth) => {
          if (json === null) throw bail;
          target[oneofName] = { case: name, value: value(json, depth + 1) };
        };
      }
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
        return alwaysBail;
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
        return alwaysBail;
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
    return alwaysBail;
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
      return alwaysBail;
  }
}

function enumReader(desc: DescEnum): (json: unknown) => number {
  if (desc.typeName === "google.protobuf.NullValue") {
    return alwaysBail;
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
