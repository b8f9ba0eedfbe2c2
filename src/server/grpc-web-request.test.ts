import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { decodeGrpcWebText } from "./grpc-web-request.js";

const b64 = (text: string): string => Buffer.from(text).toString("base64");
const decode = (text: string): string => decodeGrpcWebText(Buffer.from(text, "latin1")).toString();

describe("grpc-web-text request body", () => {
  it("decodes one base64 chunk, padded or not", () => {
    expect(decode(b64("hello"))).toBe("hello");
    expect(decode(b64("hel"))).toBe("hel");
    expect(decode("")).toBe("");
  });

  it("decodes several base64 chunks one after the other, each padded (padding mid-body)", () => {
    expect(decode(b64("hello") + b64("wo") + b64("rld!"))).toBe("helloworld!");
    expect(decode(b64("a") + b64("b") + b64("c"))).toBe("abc");
  });

  it("refuses what is not base64 with INVALID_ARGUMENT", () => {
    for (const bad of ["aGVsbG8", "aGV$bG8=", "a===", "ab=c", "a=b=", "aGVs\nbG8=", "====", "aGVsbG8=x"]) {
      let error: unknown;
      try {
        decode(bad);
      } catch (err) {
        error = err;
      }
      expect(error, bad).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code, bad).toBe(Code.InvalidArgument);
    }
  });
});
