import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { decodeUtf8Strict, invalidUtf8Message, strictUtf8Decoder } from "./strict-utf8.js";

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("decodeUtf8Strict", () => {
  it("decodes valid UTF-8 as TextDecoder does, a leading BOM skipped", () => {
    const decoder = new TextDecoder();
    for (const sample of [
      new Uint8Array(0),
      Buffer.from('{"model":"demo"}'),
      Buffer.from("naïve 日本 🚀"),
      bytes(0xef, 0xbb, 0xbf, 0x7b, 0x7d),
    ]) {
      expect(decodeUtf8Strict(sample)).toBe(decoder.decode(sample));
    }
  });

  it.each([
    ["a stray continuation byte", bytes(0x7b, 0x80, 0x7d)],
    ["0xff", bytes(0xff)],
    ["a truncated sequence", bytes(0x22, 0xe6, 0x97, 0x22)],
    ["an overlong encoding", bytes(0xc0, 0xaf)],
    ["an encoded surrogate", bytes(0xed, 0xa0, 0x80)],
  ])("refuses %s with INVALID_ARGUMENT", (_name, input) => {
    let error: unknown;
    try {
      decodeUtf8Strict(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toBe(invalidUtf8Message);
  });

  it("serves as connect's jsonOptions.textDecoder", () => {
    expect(strictUtf8Decoder.decode(Buffer.from("{}"))).toBe("{}");
    expect(strictUtf8Decoder.decode()).toBe("");
    expect(() => strictUtf8Decoder.decode(bytes(0xff))).toThrow(invalidUtf8Message);
  });
});
