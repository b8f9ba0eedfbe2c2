import { fromJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { boundEchoedInput, maxEchoLength } from "./bounded-echo.js";
import { createJsonCodec } from "./compiled-json-codec.js";

const strict = createJsonCodec(CompleteRequestSchema, { ignoreUnknownFields: false });

/** The codec's error for `text`, and protobuf-es's own. */
function errors(text: string): { ours: string; theirs: string } {
  let ours = "";
  let theirs = "";
  try {
    strict.parse(text);
  } catch (err) {
    ours = (err as Error).message;
  }
  try {
    fromJsonString(CompleteRequestSchema, text);
  } catch (err) {
    theirs = (err as Error).message;
  }
  expect(ours).not.toBe("");
  return { ours, theirs };
}

describe("JSON parse errors quote at most 64 characters of input", () => {
  it("cuts a 2 MB unknown key, keeping protobuf-es's wording", () => {
    const key = "k".repeat(2_000_000);
    const { ours, theirs } = errors(`{"model":"demo","${key}":1}`);
    expect(theirs.length).toBeGreaterThan(2_000_000); // what protobuf-es alone answers
    expect(ours).toBe(
      `cannot decode message sluice.v1.CompleteRequest from JSON: key "${"k".repeat(maxEchoLength)}…" is unknown`,
    );
  });

  it.each([
    ["a duplicate object key", (k: string) => `{"${k}":1,"${k}":2}`, "duplicate object key"],
    ["an unknown key in a nested message", (k: string) => `{"messages":[{"${k}":1}]}`, "is unknown"],
  ])("cuts %s", (_name, body, words) => {
    const { ours, theirs } = errors(body("x".repeat(10_000)));
    expect(theirs.length).toBeGreaterThan(10_000);
    expect(ours.length).toBeLessThan(200);
    expect(ours).toContain(words);
    expect(ours).toContain(`"${"x".repeat(maxEchoLength)}…"`);
    // Everything but the quoted input is protobuf-es's.
    expect(ours.slice(0, ours.indexOf('"'))).toBe(theirs.slice(0, theirs.indexOf('"')));
  });

  it("leaves errors with short input exactly as protobuf-es words them", () => {
    for (const text of [
      '{"temprature":1}',
      `{"${"k".repeat(maxEchoLength)}":1}`,
      '{"model":1}',
      "{not json",
      '{"messages":[{"role":"ROLE_NOPE"}]}',
    ]) {
      const { ours, theirs } = errors(text);
      expect(ours).toBe(theirs);
    }
  });

  it("cuts between code points", () => {
    const { ours } = errors(`{"${"🚀".repeat(1000)}":1}`);
    expect((ours as string & { isWellFormed(): boolean }).isWellFormed()).toBe(true);
    expect(ours).toContain(`key "${"🚀".repeat(maxEchoLength / 2)}…" is unknown`);
  });

  it("returns other errors, and non-errors, as they are", () => {
    const short = new Error('key "k" is unknown');
    const unquoted = new Error("x".repeat(1000));
    expect(boundEchoedInput(short)).toBe(short);
    expect(boundEchoedInput(unquoted)).toBe(unquoted);
    expect(boundEchoedInput("text")).toBe("text");
  });
});
