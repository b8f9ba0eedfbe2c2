import {
  ScalarType,
  toJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
} from "@bufbuild/protobuf";
import { isScalarZeroValue } from "@bufbuild/protobuf/reflect";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { alwaysBail, bail, needsProtobufEs, type AnyRecord, type MessageWriter } from "./json-plan-shared.js";

/** Writing a message as proto3 JSON by per-type plans (compiled-json-codec.ts explains when they bail). */

export interface WriterDeps {
  writerOf(desc: DescMessage): MessageWriter;
  options: Partial<JsonWriteOptions>;
}

/** A field's JSON value, or undefined when protobuf-es would leave it out. */
type FieldWriter = (message: AnyRecord) => JsonValue | undefined;

export function compileWriter(desc: DescMessage, deps: WriterDeps): MessageWriter {
  if (needsProtobufEs(desc)) {
    return (message) => {
      try {
        return toJson(desc, message as never, deps.options);
      } catch {
        throw bail;
      }
    };
  }
  const fields = [...desc.fields]
    .sort((a, b) => a.number - b.number)
    .map((field) => ({ key: field.jsonName, write: fieldWriter(field, deps) }));
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
        return alwaysBail;
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
    if (item === undefined || !Object.hasOwn(message, name)) return undefined;
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
    return alwaysBail;
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
    return alwaysBail;
  }
  const names = new Map(desc.values.map((value) => [value.number, value.name]));
  return (value) => {
    if (typeof value !== "number") throw bail;
    // An unknown number is written as the number, as protobuf-es does.
    return names.get(value) ?? value;
  };
}
