/**
 * Measuring and cutting error text by what it costs on the wire: an error's message travels
 * percent-encoded in `grpc-message` and as UTF-8 inside base64 in `grpc-status-details-bin`.
 * Pure and allocation-free except where a cut string is returned.
 */

/** `text` if it has at most `maxLength` UTF-16 units; else its start, cut between code points, and "…". */
export function cutText(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  let end = Math.max(0, maxLength - 1);
  if (end > 0 && isHighSurrogate(text.charCodeAt(end - 1))) end--; // never half a surrogate pair
  return `${text.slice(0, end)}…`;
}

/** `text` without lone surrogates (U+FFFD instead): `encodeURIComponent` throws on them. */
export function wellFormed(text: string): string {
  const s = text as WellFormedString;
  return s.isWellFormed() ? text : s.toWellFormed();
}

/** `Buffer.byteLength(text, "utf8")`: lone surrogates count 3 bytes (U+FFFD). */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** `encodeURIComponent(text).length`, without building it (for well-formed text). */
export function percentEncodedLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const cost = percentCost(text, i);
    n += cost & 0xff;
    i += cost >> 8;
  }
  return n;
}

/**
 * The longest start of `text`, cut between code points and ending "…" when cut, whose cost in
 * a gRPC error's trailers fits `budget` bytes: its percent-encoded length in `grpc-message`
 * plus its UTF-8 length ×4/3 (base64) in `grpc-status-details-bin`.
 */
export function cutToTrailerBudget(text: string, budget: number): string {
  if (trailerCost(text) <= budget) return text;
  const ellipsis = 9 + 4; // "…": %E2%80%A6, and 3 UTF-8 bytes in base64
  let used = 0;
  for (let i = 0; i < text.length; ) {
    const cost = percentCost(text, i);
    used += unitTrailerCost(cost & 0xff);
    if (used > budget - ellipsis) return `${text.slice(0, i)}…`;
    i += 1 + (cost >> 8);
  }
  return text;
}

/** What `text` costs in a gRPC error's trailers (see cutToTrailerBudget). */
export function trailerCost(text: string): number {
  let used = 0;
  for (let i = 0; i < text.length; ) {
    const cost = percentCost(text, i);
    used += unitTrailerCost(cost & 0xff);
    i += 1 + (cost >> 8);
  }
  return used;
}

/** A code point's trailer cost from its percent-encoded length (ASCII: 1 UTF-8 byte, else pct / 3). */
function unitTrailerCost(pct: number): number {
  const utf8 = pct <= 3 ? 1 : pct / 3;
  return pct + (utf8 * 4) / 3;
}

/**
 * The percent-encoded length of the code point at `i` (low byte) and how many extra UTF-16
 * units it spans (the byte above): 1 or 3 for ASCII, 6, 9, or 12 for a surrogate pair.
 */
function percentCost(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0x80) return unreserved[c] === 1 ? 1 : 3;
  if (c < 0x800) return 6;
  if (isHighSurrogate(c) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) return 12 | (1 << 8);
  return 9; // the rest of the BMP; a lone surrogate (sent as U+FFFD)
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** What `encodeURIComponent` leaves as is: A–Z a–z 0–9 - _ . ! ~ * ' ( ). */
const unreserved = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()") unreserved[c.charCodeAt(0)] = 1;

/** ES2024 (Node ≥ 20); the project's `lib` is ES2023. */
type WellFormedString = string & { isWellFormed(): boolean; toWellFormed(): string };
