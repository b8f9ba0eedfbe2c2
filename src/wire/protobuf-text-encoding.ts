import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";

/**
 * protobuf-es turns every string field into bytes with `TextEncoder.encode`, which builds a
 * fresh ArrayBuffer per string (a gRPC answer carries about ten strings, a streamed delta
 * one or two). `Buffer.from(text, "utf8")` slices Node's pooled slab instead, several times
 * cheaper, and yields the same bytes: both implement WHATWG "UTF-8 encode", lone
 * surrogates included (U+FFFD). The binary writer copies every chunk into its result in
 * `finish()`, so a pooled slice never outlives the call.
 *
 * Its UTF-8 check (`encodeURIComponent` in a try/catch, a string built and dropped per
 * string field set through reflection) becomes `String.prototype.isWellFormed`: the same
 * answer — false exactly for lone surrogates — without the allocation.
 *
 * protobuf-es keeps this setting on `globalThis` for the process; installing it again is a
 * no-op. Decoding stays as it was (TextDecoder is already the fastest there): protobuf-es
 * decodes proto3 strings strictly (a fatal TextDecoder: invalid UTF-8 is a parse error, which
 * parseBinary answers with INVALID_ARGUMENT), at ~10–50 ns per string over the lenient
 * decoder in a micro-benchmark — kept, as proto3 requires it.
 */
export function useNodeTextEncoding(): void {
  const current = getTextEncoding();
  if (current.encodeUtf8 === encodeUtf8) return;
  configureTextEncoding({ encodeUtf8, decodeUtf8: current.decodeUtf8, checkUtf8 });
}

function encodeUtf8(text: string): Uint8Array<ArrayBuffer> {
  // Node's pool is a plain ArrayBuffer, never shared.
  return Buffer.from(text, "utf8") as Uint8Array<ArrayBuffer>;
}

/** ES2024 (Node ≥ 20); the project's `lib` is ES2023. */
type WellFormedCheck = string & { isWellFormed(): boolean };

function checkUtf8(text: string): boolean {
  return (text as WellFormedCheck).isWellFormed();
}
