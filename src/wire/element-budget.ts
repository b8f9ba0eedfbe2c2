import type { DescMessage } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { countBinaryElements, minBytesPerElement } from "./binary-element-count.js";

/**
 * The most elements one request may hold — a contract limit (CompleteRequest in
 * chat_service.proto, README "Limits"). In JSON an element is an object, an array, an
 * object member or an array item; in the binary format a field occurrence (nested ones,
 * map keys and values, unknown fields and packed list elements included).
 *
 * Parsing costs per element (~0.3–1.5 µs each, and memory) before validation can look at
 * a count: a 4 MB body of 1.3M empty messages took 1–2 s and ~400 MB to parse. Within the
 * budget the costliest shapes parse in ~0.1 s at most. The heaviest legitimate request the
 * other limits allow in practice (2048 messages with text, images and tool calls, 128 tools
 * with JSON schemas of 8 properties: element-budget.test.ts) takes about two thirds of it.
 */
export const maxRequestElements = 65_536;

/**
 * INVALID_ARGUMENT (reason REQUEST_LIMIT_EXCEEDED) when a JSON request holds more than
 * `limit` elements; called before the text is parsed. Free up to `limit` characters (no
 * element takes less than one: see countJsonElements), one pass over the text above.
 */
export function checkJsonElements(text: string, limit = maxRequestElements): void {
  if (text.length > limit && countJsonElements(text, limit) > limit) {
    throw tooComplex(`more than ${limit} JSON elements (objects, arrays, members and items)`);
  }
}

/**
 * The same for a binary request of type `schema`, before `fromBinary`: free up to twice
 * `limit` bytes (a field takes two at least: minBytesPerElement), one pass above. Bytes that
 * are not a message pass — the parser answers for them, having read no more than the limit.
 */
export function checkBinaryElements(schema: DescMessage, bytes: Uint8Array, limit = maxRequestElements): void {
  if (bytes.byteLength > limit && bytes.byteLength > limit * minBytesPerElement(schema)) {
    if (countBinaryElements(schema, bytes, limit) > limit) {
      throw tooComplex(`more than ${limit} protobuf fields`);
    }
  }
}

function tooComplex(what: string): ConnectError {
  return gatewayError(Code.InvalidArgument, reasons.requestLimitExceeded, `request too complex: ${what}`);
}

const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;

/**
 * Objects, arrays, object members and array items in JSON text, counted up to just past
 * `limit` (it stops there). One pass, no allocation: a `{` or `[` outside a string counts
 * itself and, unless the next token closes it, its first entry; a `,` counts the entry
 * after it. String contents are passed over with indexOf. Each element owns a character
 * (an opening bracket, a comma, or for a first entry its container's closing bracket), so
 * valid JSON never counts more than its length. Invalid JSON counts something close; the
 * parser refuses it anyway.
 */
export function countJsonElements(text: string, limit: number): number {
  const length = text.length;
  let count = 0;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i++);
    if (c === quote) {
      // To the closing quote: the first `"` not escaped, i.e. not after an odd run of backslashes.
      for (;;) {
        const end = text.indexOf('"', i);
        if (end < 0) return count;
        let backslashes = 0;
        while (end - backslashes - 1 >= i && text.charCodeAt(end - backslashes - 1) === backslash) backslashes++;
        i = end + 1;
        if ((backslashes & 1) === 0) break;
      }
    } else if (c === openBrace || c === openBracket) {
      count++;
      let next = text.charCodeAt(i);
      while (next === 0x20 || next === 0x0a || next === 0x0d || next === 0x09) next = text.charCodeAt(++i);
      if (next !== closeBrace && next !== closeBracket && i < length) count++;
      if (count > limit) return count;
    } else if (c === comma) {
      if (++count > limit) return count;
    }
  }
  return count;
}
