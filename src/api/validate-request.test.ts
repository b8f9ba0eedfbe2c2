import { readFileSync } from "node:fs";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { errorLimits } from "../errors/bounded-error.js";
import { reasons } from "../errors/reasons.js";
import { maxEchoLength } from "../wire/bounded-echo.js";
import { requestLimits, validateCompleteRequest } from "./validate-request.js";

/** A request's fields as `create` takes them (loosely typed: tests build invalid ones). */
type RequestInit = Record<string, unknown>;

const text = (value: string) => ({ part: { case: "text" as const, value } });
const user = (value = "hi") => ({ role: Role.USER, content: [text(value)] });

function request(init: Partial<RequestInit> = {}) {
  return create(CompleteRequestSchema, { model: "demo", messages: [user()], ...init } as MessageInitShape<
    typeof CompleteRequestSchema
  >);
}

function rejection(init: Partial<RequestInit>): ConnectError {
  try {
    validateCompleteRequest(request(init));
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected the request to be refused");
}

const violations = (err: ConnectError) => err.findDetails(BadRequestSchema)[0]?.fieldViolations ?? [];

/** The gRPC trailers' error size: grpc-message plus grpc-status-details-bin. */
function trailerBytes(err: ConnectError): number {
  const trailers = setTrailerStatus(new Headers(), err);
  return (trailers.get("grpc-message")?.length ?? 0) + (trailers.get("grpc-status-details-bin")?.length ?? 0);
}

describe("validateCompleteRequest", () => {
  it("accepts a valid request", () => {
    expect(() =>
      validateCompleteRequest(
        request({
          messages: [
            { role: Role.SYSTEM, content: [text("be brief")] },
            user(),
            { role: Role.ASSISTANT, toolCalls: [{ id: "c1", name: "lookup", arguments: "{}" }] },
            { role: Role.TOOL, toolCallId: "c1", content: [text("42")] },
          ],
          tools: [{ name: "lookup" }],
          toolChoice: { choice: { case: "toolName", value: "lookup" } },
          stop: ["\n\n"],
          metadata: { end_user: "u-1" },
        }),
      ),
    ).not.toThrow();
  });

  it("names each bad field by its path", () => {
    const err = rejection({
      model: "",
      messages: [
        user(),
        {
          role: Role.USER,
          content: [text("x"), { part: { case: "image", value: { source: { case: "url", value: "ftp://x" } } } }],
        },
        { role: Role.UNSPECIFIED, content: [text("x")] },
      ],
    });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err).map((v) => v.field)).toEqual(["model", "messages[1].content[1].image.url", "messages[2].role"]);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.requiredField);
  });

  it("records the first few violations of many, counts the rest, and stays small", () => {
    // The shape that blocked the event loop: every message empty, two violations each.
    const messages = Array.from({ length: requestLimits.maxMessages }, () => ({ role: Role.UNSPECIFIED }));
    const err = rejection({ messages });
    const total = 2 * requestLimits.maxMessages;
    expect(violations(err).length).toBe(errorLimits.maxViolations);
    expect(
      violations(err)
        .slice(0, 2)
        .map((v) => v.field),
    ).toEqual(["messages[0].role", "messages[0].content"]);
    expect(err.rawMessage).toMatch(new RegExp(`^${total} invalid fields: messages\\[0\\]\\.role: .*; … and \\d+ more$`));
    expect(trailerBytes(err)).toBeLessThanOrEqual(errorLimits.maxEncodedBytes);
  });

  it.each([
    ["messages", { messages: Array.from({ length: requestLimits.maxMessages + 1 }, () => ({})) }, "messages"],
    [
      "content parts in a message",
      { messages: [user(), { role: Role.USER, content: Array.from({ length: requestLimits.maxContentParts + 1 }, () => ({})) }] },
      "messages[1].content",
    ],
    [
      "tool calls in a message",
      { messages: [{ role: Role.USER, toolCalls: Array.from({ length: requestLimits.maxToolCalls + 1 }, () => ({})) }] },
      "messages[0].tool_calls",
    ],
    ["tools", { tools: Array.from({ length: requestLimits.maxTools + 1 }, () => ({ name: "" })) }, "tools"],
    ["stop sequences", { stop: Array.from({ length: requestLimits.maxStopSequences + 1 }, () => "") }, "stop"],
    [
      "metadata entries",
      { metadata: Object.fromEntries(Array.from({ length: requestLimits.maxMetadataEntries + 1 }, (_, i) => [`k${i}`, "v"])) },
      "metadata",
    ],
  ])("refuses too many %s with that violation alone, before looking at any element", (_name, init, field) => {
    // Every element is also invalid (empty messages, nameless tools, empty stop sequences…):
    // none of that is reported, nor the missing model.
    const err = rejection({ model: "", ...init });
    expect(violations(err)).toEqual([expect.objectContaining({ field, reason: reasons.requestLimitExceeded })]);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.requestLimitExceeded);
    expect(err.rawMessage).toMatch(new RegExp(`^${field.replace(/[[\].]/g, "\\$&")}: at most `));
  });

  it("refuses 100k empty messages at once, with one violation", () => {
    const messages = Array.from({ length: 100_000 }, () => ({}));
    const err = rejection({ messages });
    expect(err.rawMessage).toBe(`messages: at most ${requestLimits.maxMessages} messages (got 100000)`);
  });

  it("accepts every count at its limit", () => {
    const atLimit = request({
      messages: [
        { role: Role.USER, content: Array.from({ length: requestLimits.maxContentParts }, () => text("x")) },
        {
          role: Role.ASSISTANT,
          toolCalls: Array.from({ length: requestLimits.maxToolCalls }, (_, i) => ({ id: `c${i}`, name: "t" })),
        },
        ...Array.from({ length: requestLimits.maxMessages - 2 }, () => user()),
      ],
      tools: Array.from({ length: requestLimits.maxTools }, (_, i) => ({ name: `t${i}` })),
      stop: Array.from({ length: requestLimits.maxStopSequences }, (_, i) => `s${i}`),
      metadata: Object.fromEntries(Array.from({ length: requestLimits.maxMetadataEntries }, (_, i) => [`k${i}`, "v"])),
    });
    expect(() => validateCompleteRequest(atLimit)).not.toThrow();
  });

  it("refuses metadata keys and values over their lengths", () => {
    const long = rejection({ metadata: { k: "v".repeat(requestLimits.maxMetadataValueLength + 1) } });
    expect(violations(long)).toEqual([expect.objectContaining({ field: 'metadata["k"]', reason: reasons.requestLimitExceeded })]);
    const key = rejection({ metadata: { ["k".repeat(requestLimits.maxMetadataKeyLength + 1)]: "v" } });
    expect(violations(key)).toEqual([expect.objectContaining({ field: "metadata", reason: reasons.requestLimitExceeded })]);
  });
});

describe("requestLimits", () => {
  it("are the limits the proto contract documents", () => {
    const proto = readFileSync(new URL("../../proto/sluice/v1/chat_service.proto", import.meta.url), "utf8");
    const documented = [
      `messages              at most ${requestLimits.maxMessages}`,
      `Message.content       at most ${requestLimits.maxContentParts} parts per message`,
      `Message.tool_calls    at most ${requestLimits.maxToolCalls} per message`,
      `tools                 at most ${requestLimits.maxTools}`,
      `stop                  at most ${requestLimits.maxStopSequences}`,
      `metadata              at most ${requestLimits.maxMetadataEntries} entries; keys up to ${requestLimits.maxMetadataKeyLength}, values up to ${requestLimits.maxMetadataValueLength} characters`,
    ];
    for (const line of documented) expect(proto).toContain(line);
    expect(proto).toContain(`first ${errorLimits.maxViolations} bad fields`);
  });

  it("are listed in the README's Limits table with their defaults", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const start = readme.indexOf("## Limits");
    expect(start, "README has a Limits section").toBeGreaterThanOrEqual(0);
    const rows = readme
      .slice(start)
      .split("\n")
      .filter((line) => line.startsWith("|"));
    const row = (label: string) =>
      rows
        .find((r) => r.split("|")[1]?.trim() === label)
        ?.split("|")
        .map((cell) => cell.trim());
    const expected: [string, number][] = [
      ["Messages per request", requestLimits.maxMessages],
      ["Content parts per message", requestLimits.maxContentParts],
      ["Tool calls per message", requestLimits.maxToolCalls],
      ["Tools per request", requestLimits.maxTools],
      ["Stop sequences", requestLimits.maxStopSequences],
      ["Metadata entries", requestLimits.maxMetadataEntries],
      ["Metadata key length", requestLimits.maxMetadataKeyLength],
      ["Metadata value length", requestLimits.maxMetadataValueLength],
      ["Tool name length", requestLimits.maxToolNameLength],
      ["Field violations listed in an error", errorLimits.maxViolations],
      ["Error message length", errorLimits.maxMessageLength],
      ["Error size in gRPC trailers", errorLimits.maxEncodedBytes],
      ["Input quoted in a parse error", maxEchoLength],
    ];
    for (const [label, value] of expected) {
      const cells = row(label);
      expect(cells, label).toBeDefined();
      expect(cells![2]!.replace(/[^\d]/g, "")).toBe(String(value));
    }
  });
});
