import { Code, ConnectError } from "@connectrpc/connect";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, QuotaFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { boundError, encodedErrorBytes, errorLimits } from "./bounded-error.js";
import { failures } from "./failure-table.js";
import { gatewayError, invalidArgument, UpstreamError } from "./gateway-error.js";
import { reasons } from "./reasons.js";

/** The trailers a gRPC server sends for `err`, as connect (and the gRPC lane) writes them. */
function trailersOf(err: ConnectError): Headers {
  return setTrailerStatus(new Headers(), err);
}

/** grpc-message + grpc-status-details-bin + the error's own metadata, in bytes as sent. */
function encodedSize(trailers: Headers): number {
  let size = 0;
  trailers.forEach((value, key) => {
    if (key === "grpc-status") return;
    size += key === "grpc-message" || key === "grpc-status-details-bin" ? value.length : key.length + value.length;
  });
  return size;
}

/** What a stock client counts against its metadata limit (RFC 7541 entry size: name + value + 32). */
function metadataSize(trailers: Headers): number {
  let size = 0;
  trailers.forEach((value, key) => {
    size += key.length + value.length + 32;
  });
  return size;
}

function expectBounded(err: ConnectError): ConnectError {
  const bounded = boundError(err);
  const trailers = trailersOf(bounded);
  expect(encodedSize(trailers)).toBeLessThanOrEqual(errorLimits.maxEncodedBytes);
  expect(metadataSize(trailers)).toBeLessThan(8 * 1024);
  expect(bounded.rawMessage.length).toBeLessThanOrEqual(errorLimits.maxMessageLength);
  // A client reads it back: same code, same message.
  const read = findTrailerError(trailers);
  expect(read?.code).toBe(err.code);
  expect(read?.rawMessage).toBe(bounded.rawMessage);
  // The Connect error body stays small too.
  expect(errorToJsonBytes(bounded, {}).byteLength).toBeLessThan(2 * errorLimits.maxEncodedBytes);
  return bounded;
}

describe("boundError", () => {
  it("returns an error within bounds itself", () => {
    const upstream = new UpstreamError({
      failure: failures.rateLimited,
      provider: "openai",
      message: "rate limited",
      status: 429,
      retryAfterMs: 1500,
    });
    for (const err of [
      gatewayError(Code.NotFound, reasons.modelNotFound, 'no model alias "gpt"', { alias: "gpt" }),
      invalidArgument([
        { field: "model", description: "required" },
        { field: "messages[0].role", description: "required: ROLE_USER…" },
      ]),
      upstream,
      new ConnectError("plain", Code.Internal),
      new ConnectError("", Code.Canceled),
    ]) {
      expect(boundError(err)).toBe(err);
    }
  });

  it("cuts a long message and keeps code, cause and details", () => {
    const cause = new Error("root");
    const err = new ConnectError("x".repeat(2_000_000), Code.InvalidArgument, undefined, undefined, cause);
    const bounded = expectBounded(err);
    expect(bounded).not.toBe(err);
    expect(bounded.rawMessage.endsWith("…")).toBe(true);
    expect(bounded.rawMessage.startsWith("xxxx")).toBe(true);
    expect(bounded.cause).toBe(cause);
  });

  it("cuts multi-byte text between code points, to what its encoding costs", () => {
    for (const unit of ["é", "日本", "🚀", "👩‍💻", "a%b c"]) {
      const err = gatewayError(Code.Unavailable, reasons.upstreamUnavailable, unit.repeat(3000));
      const bounded = expectBounded(err);
      expect((bounded.rawMessage as string & { isWellFormed(): boolean }).isWellFormed()).toBe(true);
      expect(bounded.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.upstreamUnavailable);
    }
  });

  it("makes a message with lone surrogates sendable (encodeURIComponent would throw)", () => {
    const err = new ConnectError("bad \ud800 text", Code.InvalidArgument);
    expect(() => trailersOf(err)).toThrow(URIError);
    expect(expectBounded(err).rawMessage).toBe("bad \ufffd text");
  });

  it("keeps at most maxViolations of a BadRequest with thousands", () => {
    const fieldViolations = Array.from({ length: 5000 }, (_, i) => ({
      field: `messages[${i}].content`,
      description: "required: at least one content part",
      reason: reasons.requiredField,
    }));
    const err = new ConnectError("5000 invalid fields", Code.InvalidArgument, undefined, [
      { desc: ErrorInfoSchema, value: { reason: reasons.requiredField, domain: "sluice" } },
      { desc: BadRequestSchema, value: { fieldViolations } },
    ]);
    const bounded = expectBounded(err);
    const kept = bounded.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(kept.length).toBe(errorLimits.maxViolations);
    expect(kept[0]!.field).toBe("messages[0].content");
    expect(bounded.findDetails(ErrorInfoSchema)[0]!.reason).toBe(reasons.requiredField);
  });

  it("cuts long violation fields and descriptions, and drops violations past the details budget", () => {
    const fieldViolations = Array.from({ length: 10 }, (_, i) => ({
      field: `f${i}${"x".repeat(10_000)}`,
      description: "d".repeat(10_000),
    }));
    const bounded = expectBounded(
      new ConnectError("bad", Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: { fieldViolations } }]),
    );
    const kept = bounded.findDetails(BadRequestSchema)[0]!.fieldViolations;
    expect(kept.length).toBeGreaterThan(0);
    for (const v of kept) {
      expect(v.field.length).toBeLessThanOrEqual(errorLimits.maxFieldLength);
      expect(v.description.length).toBeLessThanOrEqual(errorLimits.maxDescriptionLength);
    }
  });

  it("cuts huge ErrorInfo metadata and keeps its reason", () => {
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 1000; i++) metadata[`key-${i}-${"k".repeat(100)}`] = "v".repeat(10_000);
    const err = gatewayError(Code.Unavailable, reasons.upstreamUnavailable, "provider failed", metadata);
    const bounded = expectBounded(err);
    const info = bounded.findDetails(ErrorInfoSchema)[0]!;
    expect(info.reason).toBe(reasons.upstreamUnavailable);
    expect(info.domain).toBe("sluice");
    const entries = Object.entries(info.metadata);
    expect(entries.length).toBeLessThanOrEqual(errorLimits.maxErrorInfoEntries);
    for (const [key, value] of entries) {
      expect(key.length).toBeLessThanOrEqual(errorLimits.maxErrorInfoKeyLength);
      expect(value.length).toBeLessThanOrEqual(errorLimits.maxErrorInfoValueLength);
    }
  });

  it("drops details of other kinds that do not fit, keeping the first ones that do", () => {
    const quota = create(QuotaFailureSchema, {
      violations: Array.from({ length: 200 }, () => ({ subject: "s".repeat(100), description: "q".repeat(100) })),
    });
    const err = new ConnectError("quota", Code.ResourceExhausted, undefined, [
      { desc: ErrorInfoSchema, value: { reason: reasons.upstreamRateLimited, domain: "sluice" } },
      { desc: RetryInfoSchema, value: { retryDelay: { seconds: 3n } } },
      { desc: QuotaFailureSchema, value: quota },
    ]);
    err.details.push({ type: "example.Big", value: new Uint8Array(100_000) });
    const bounded = expectBounded(err);
    expect(bounded.details.map((d) => ("desc" in d ? d.desc.typeName : d.type))).toEqual([
      "google.rpc.ErrorInfo",
      "google.rpc.RetryInfo",
    ]);
  });

  it("keeps the error's own metadata while it fits", () => {
    const err = new ConnectError("with headers", Code.Unavailable, { "retry-after": "3", "x-big": "b".repeat(100_000) });
    const bounded = expectBounded(err);
    expect(bounded.metadata.get("retry-after")).toBe("3");
    expect(bounded.metadata.get("x-big")).toBeNull();
  });

  it("counts an error's size as it is sent, or more (random errors)", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ["a", " ", "%", "é", "日", "🚀", "\ud800"];
    const text = (max: number) => Array.from({ length: random(max) }, () => alphabet[random(alphabet.length)]).join("");
    for (let round = 0; round < 300; round++) {
      const metadata: Record<string, string> = {};
      for (let i = random(30); i > 0; i--) metadata[text(80)] = text(400);
      const fieldViolations = Array.from({ length: random(30) }, () => ({
        field: text(200),
        description: text(400),
        reason: text(70),
      }));
      const err = new ConnectError(text(6000), Code.InvalidArgument, undefined, [
        { desc: ErrorInfoSchema, value: { reason: text(80), domain: "sluice", metadata } },
        { desc: BadRequestSchema, value: { fieldViolations } },
      ]);
      const bounded = expectBounded(err);
      if ((bounded.rawMessage as string & { isWellFormed(): boolean }).isWellFormed()) {
        expect(encodedErrorBytes(bounded)).toBeGreaterThanOrEqual(encodedSize(trailersOf(bounded)));
      }
    }
  });
});
