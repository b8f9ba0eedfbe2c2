import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CompleteRequestSchema, type CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import { parseBinary } from "./envelope.js";
import { useNodeTextEncoding } from "./protobuf-text-encoding.js";

function parseError(bytes: Uint8Array): ConnectError {
  try {
    parseBinary(CompleteRequestSchema, bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected a parse error");
}

describe("parseBinary", () => {
  useNodeTextEncoding(); // as the server runs it

  it("reads a message", () => {
    const bytes = toBinary(CompleteRequestSchema, create(CompleteRequestSchema, { model: "démo" }));
    expect((parseBinary(CompleteRequestSchema, bytes) as CompleteRequest).model).toBe("démo");
  });

  it.each([
    ["bytes that are not the message", Uint8Array.of(0xff, 0xff, 0xff)],
    ["a truncated field", Uint8Array.of(0x0a, 0x05, 0x61)],
    // CompleteRequest.model (field 1, a proto3 string) holding C3 28: not UTF-8.
    ["a string field that is not UTF-8", Uint8Array.of(0x0a, 0x02, 0xc3, 0x28)],
    ["a nested string field that is not UTF-8", Uint8Array.of(0x12, 0x05, 0x22, 0x03, 0x0a, 0x01, 0xff)],
  ])("answers %s with INVALID_ARGUMENT (the client's bytes), in connect's words", (_name, bytes) => {
    const err = parseError(bytes);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^parse binary: /);
  });
});
