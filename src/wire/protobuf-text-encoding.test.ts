import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { CompleteResponseSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { useNodeTextEncoding } from "./protobuf-text-encoding.js";

const samples = [
  "",
  "Hello! How can I help you today?",
  "naïve café — ½ € ✓",
  "日本語のテキスト",
  "emoji 🚀👩‍💻 and flags 🇩🇪",
  "lone high \ud800 surrogate",
  "lone low \udc00 surrogate",
  "reversed pair \udc00\ud800",
  "nul \u0000 and controls \u0001\u001f",
  "x".repeat(70_000),
];

describe("useNodeTextEncoding", () => {
  useNodeTextEncoding();
  const encoder = new TextEncoder();

  it("encodes every string to the same bytes as TextEncoder, lone surrogates included", () => {
    const { encodeUtf8 } = getTextEncoding();
    for (const text of samples) expect(Buffer.from(encodeUtf8(text)).equals(Buffer.from(encoder.encode(text)))).toBe(true);
  });

  it("checks UTF-8 exactly as protobuf-es's encodeURIComponent check does", () => {
    const { checkUtf8 } = getTextEncoding();
    for (const text of samples) {
      let wellFormed = true;
      try {
        encodeURIComponent(text);
      } catch {
        wellFormed = false;
      }
      expect(checkUtf8(text)).toBe(wellFormed);
    }
  });

  it("round-trips messages through toBinary / fromBinary, and a later encode cannot change an earlier result", () => {
    const first = toBinary(CompleteResponseSchema, create(CompleteResponseSchema, { id: samples[2]!, model: samples[4]! }));
    const copy = Uint8Array.from(first);
    // Many more strings through the pooled slab: the first result must not share it.
    for (let i = 0; i < 2_000; i++)
      toBinary(CompleteResponseSchema, create(CompleteResponseSchema, { id: `id-${i}`, model: samples[3]! }));
    expect(Buffer.from(first).equals(Buffer.from(copy))).toBe(true);
    const back = fromBinary(CompleteResponseSchema, first);
    expect(back.id).toBe(samples[2]);
    expect(back.model).toBe(samples[4]);
  });

  it("is idempotent", () => {
    const before = getTextEncoding();
    useNodeTextEncoding();
    expect(getTextEncoding()).toBe(before);
  });
});
