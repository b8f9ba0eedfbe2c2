import { ScalarType, create, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";

// Seeded random messages and JSON for differential tests of the compiled codecs against protobuf-es.

/** mulberry32: a small seeded generator, so every run checks the same cases. */
export function seeded(seed: number): () => number {
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
export function randomJson(random: () => number, depth = 0): JsonValue {
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
export function randomMessage(schema: DescMessage, random: () => number, depth = 0): Message {
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
export function mutate(json: JsonValue, random: () => number): JsonValue {
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
    const other = key.includes("_")
      ? key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
      : key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    copy[other] = copy[key]!;
  } else {
    const key = keys[Math.floor(random() * keys.length)]!;
    copy[key] = random() < 0.7 ? mutate(copy[key]!, random) : randomJson(random);
  }
  return copy;
}
