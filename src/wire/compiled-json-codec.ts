import {
  fromJson,
  fromJsonString,
  toJsonString,
  type DescMessage,
  type JsonReadOptions,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
} from "@bufbuild/protobuf";
import { boundEchoedInput } from "./bounded-echo.js";
import { checkJsonElements, maxRequestElements } from "./element-budget.js";
import { findDuplicateKey } from "./json-duplicate-keys.js";
import { bail, type MessageReader, type MessageWriter } from "./json-plan-shared.js";
import { compileReader } from "./json-read-plan.js";
import { compileWriter } from "./json-write-plan.js";

export interface JsonCodecHooks {
  /** Called when a message was handed to protobuf-es (tests prove the plans are used). */
  onFallback?(direction: "parse" | "stringify"): void;
  /**
   * Refuse text holding more JSON elements than this before parsing it (element-budget.ts):
   * for request codecs. Unset: no limit.
   */
  readonly maxElements?: number;
}

/** One message type's proto3 JSON, exactly as protobuf-es reads and writes it. */
export interface MessageJsonCodec {
  /**
   * `fromJsonString(schema, text, options)`: the same message, or the same error — except that
   * input quoted back in it is cut to 64 characters (boundEchoedInput), and that text over
   * `maxElements` is refused first.
   */
  parse(text: string): Message;
  /** `toJsonString(schema, message, options)`: the same string, or the same error. */
  stringify(message: Message): string;
}

/**
 * protobuf-es reads and writes JSON through its reflection API: a wrapper object (with two
 * Maps) per message, a Map and a Set per object read, a field lookup per key — a large
 * share of a Connect JSON call's protobuf CPU and garbage in profiles. These codecs walk
 * per-type plans built once instead and keep protobuf-es for everything unusual: any value
 * the plan is not sure of (a number given as a string, an int64, bytes, a null inside a
 * oneof, a well-known type's own JSON form, an unknown enum name…) hands the whole message
 * back to protobuf-es, which then answers — or fails — exactly as it always did. So the fast
 * path only ever takes inputs whose result is beyond doubt, and every error message is
 * protobuf-es's own (with long quoted input cut: bounded-echo.ts). Only protobuf-es's
 * default write options compile; other options (and a registry, for extensions) use
 * protobuf-es throughout.
 * Tests: compiled-json-codec.test.ts compares both on every recorded and generated case.
 */
export function createJsonCodec(
  schema: DescMessage,
  options: Partial<JsonReadOptions & JsonWriteOptions> = {},
  hooks: JsonCodecHooks = {},
): MessageJsonCodec {
  const { onFallback, maxElements } = hooks;
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
      // Plans look nested types up when they read one, so a recursive type finds its own entry by then.
      reader = compileReader(desc, { readerOf, ignoreUnknown, recursionLimit, readOptions: options });
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

  function parseText(text: string): Message {
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
  }

  return {
    parse(text) {
      if (maxElements !== undefined) checkJsonElements(text, maxElements);
      try {
        return parseText(text);
      } catch (err) {
        throw boundEchoedInput(err);
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

/**
 * A method's request and response codecs, as the fast lanes keep them per route: requests
 * within the element budget (maxRequestElements), responses unchecked.
 */
export function createMethodJsonCodecs(
  method: { readonly input: DescMessage; readonly output: DescMessage },
  options: Partial<JsonReadOptions & JsonWriteOptions>,
): { readonly inputJson: MessageJsonCodec; readonly outputJson: MessageJsonCodec } {
  return {
    inputJson: createJsonCodec(method.input, options, { maxElements: maxRequestElements }),
    outputJson: createJsonCodec(method.output, options),
  };
}
