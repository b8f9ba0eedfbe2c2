import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { cutText, cutToTrailerBudget, percentEncodedLength, utf8Length, wellFormed } from "./bounded-text.js";

/**
 * Size caps of every error Sluice writes, whatever the input. A gRPC error travels in
 * trailers — `grpc-message` (percent-encoded) and `grpc-status-details-bin` (base64 of a
 * google.rpc.Status repeating the message and carrying the details) — and a stock client
 * refuses trailers over its metadata limit (8 KiB in grpc-java and grpc-core), turning the
 * error into RESOURCE_EXHAUSTED or INTERNAL. Half that is the budget here.
 */
export const errorLimits = {
  /** Longest message, in UTF-16 units; longer is cut between code points and ends "…". */
  maxMessageLength: 1024,
  /** grpc-message + grpc-status-details-bin + the error's own metadata, in bytes as sent. */
  maxEncodedBytes: 4096,
  /** The details' share of that budget (base64 bytes); later details are dropped first. */
  maxDetailsEncodedBytes: 2048,
  /** The error's own metadata (header names + values), kept in order while it fits. */
  maxMetadataBytes: 512,
  /** google.rpc.BadRequest field violations kept; the message counts the rest. */
  maxViolations: 10,
  maxFieldLength: 128,
  maxDescriptionLength: 256,
  /** google.rpc.ErrorInfo: metadata entries kept, and their key and value lengths. */
  maxErrorInfoEntries: 16,
  maxErrorInfoKeyLength: 64,
  maxErrorInfoValueLength: 256,
  /** ErrorInfo.reason and domain; BadRequest reasons. */
  maxReasonLength: 64,
} as const;

type Detail = ConnectError["details"][number];
type OutgoingDetail = Extract<Detail, { desc: unknown }>;
type AnyInit = Record<string, unknown>;

const typeUrlPrefixLength = "type.googleapis.com/".length;
/** RetryInfo { Duration retry_delay }: at most 2 + (11 + 6) bytes. */
const retryInfoMaxBytes = 20;
const detailsBinaryBudget = Math.floor((errorLimits.maxDetailsEncodedBytes * 3) / 4);

/**
 * `err` with its message and details cut to errorLimits, so that it fits a stock gRPC
 * client's trailers and a Connect error body stays small. Returns `err` itself when it is
 * within bounds (the usual case: a size computation, no allocation); else a new ConnectError
 * with the same code, cause and the parts that fit. Call it on every error before writing it.
 * Tests: bounded-error.test.ts.
 */
export function boundError(err: ConnectError): ConnectError {
  if (isBounded(err)) return err;

  let remaining = detailsBinaryBudget;
  const details: Detail[] = [];
  for (const detail of err.details) {
    const bounded = boundDetail(detail, remaining);
    if (bounded === undefined) continue;
    const size = anyBytes(bounded);
    if (size > remaining) continue;
    details.push(bounded);
    remaining -= size;
  }

  const metadata = new Headers();
  let metadataBytes = 0;
  err.metadata.forEach((value, key) => {
    const size = key.length + value.length;
    if (metadataBytes + size > errorLimits.maxMetadataBytes) return;
    metadata.append(key, value);
    metadataBytes += size;
  });

  const detailsBinary = detailsBinaryBudget - remaining;
  // What is left for the message: the total, minus the details (base64) and metadata, minus the
  // Status framing (code, message tag and length) and base64 rounding.
  const messageBudget = errorLimits.maxEncodedBytes - Math.ceil((detailsBinary * 4) / 3) - metadataBytes - 16;
  const message = cutToTrailerBudget(wellFormed(cutText(err.rawMessage, errorLimits.maxMessageLength)), messageBudget);

  const bounded = new ConnectError(message, err.code, metadata, undefined, err.cause);
  bounded.details = details;
  return bounded;
}

/** The encoded size of `err`'s trailers as Sluice sends them, counted as isBounded does (tests). */
export function encodedErrorBytes(err: ConnectError): number {
  let detailsBinary = 0;
  for (const detail of err.details) detailsBinary += anyBytes(detail);
  return encodedBytes(err.rawMessage, detailsBinary, metadataBytesOf(err.metadata));
}

function isBounded(err: ConnectError): boolean {
  const message = err.rawMessage;
  if (message.length > errorLimits.maxMessageLength || !(message as WellFormedString).isWellFormed()) return false;
  let detailsBinary = 0;
  for (const detail of err.details) {
    if (!detailWithinCaps(detail)) return false;
    detailsBinary += anyBytes(detail);
  }
  if (Math.ceil((detailsBinary * 4) / 3) > errorLimits.maxDetailsEncodedBytes) return false;
  const metadataBytes = metadataBytesOf(err.metadata);
  if (metadataBytes > errorLimits.maxMetadataBytes) return false;
  return encodedBytes(message, detailsBinary, metadataBytes) <= errorLimits.maxEncodedBytes;
}

/** grpc-message + grpc-status-details-bin (when there are details) + metadata. */
function encodedBytes(message: string, detailsBinary: number, metadataBytes: number): number {
  let size = percentEncodedLength(message) + metadataBytes;
  if (detailsBinary > 0) {
    const messageBytes = utf8Length(message);
    // Status { int32 code = 1; string message = 2; repeated Any details = 3 }: code ≤ 2 bytes.
    const status = 2 + (messageBytes > 0 ? field(messageBytes) : 0) + detailsBinary;
    size += Math.ceil((status * 4) / 3);
  }
  return size;
}

function metadataBytesOf(metadata: Headers): number {
  let size = 0;
  metadata.forEach((value, key) => {
    size += key.length + value.length;
  });
  return size;
}

/** A detail within errorLimits (or of a kind Sluice does not shape, which only the size bounds). */
function detailWithinCaps(detail: Detail): boolean {
  if (!("desc" in detail)) return true;
  const value = detail.value as AnyInit;
  switch (detail.desc.typeName) {
    case ErrorInfoSchema.typeName: {
      if (!within(value["reason"], errorLimits.maxReasonLength) || !within(value["domain"], errorLimits.maxReasonLength)) {
        return false;
      }
      let entries = 0;
      for (const key in (value["metadata"] ?? {}) as Record<string, string>) {
        const entry = (value["metadata"] as Record<string, string>)[key];
        if (++entries > errorLimits.maxErrorInfoEntries || key.length > errorLimits.maxErrorInfoKeyLength) return false;
        if (!within(entry, errorLimits.maxErrorInfoValueLength)) return false;
      }
      return true;
    }
    case BadRequestSchema.typeName: {
      const violations = (value["fieldViolations"] ?? []) as AnyInit[];
      if (violations.length > errorLimits.maxViolations) return false;
      for (const v of violations) {
        if (!within(v["field"], errorLimits.maxFieldLength) || !within(v["description"], errorLimits.maxDescriptionLength)) {
          return false;
        }
        if (!within(v["reason"], errorLimits.maxReasonLength) || v["localizedMessage"] !== undefined) return false;
      }
      return true;
    }
    default:
      return true;
  }
}

function within(text: unknown, maxLength: number): boolean {
  return text === undefined || (typeof text === "string" && text.length <= maxLength);
}

/** `detail` cut to errorLimits and to `budget` bytes (its Any), or undefined when it cannot fit. */
function boundDetail(detail: Detail, budget: number): Detail | undefined {
  if (!("desc" in detail)) return detail;
  const value = detail.value as AnyInit;
  // type_url, and the tags and lengths around the value and the Any (generously: never drop ErrorInfo)
  const overhead = field(typeUrlPrefixLength + detail.desc.typeName.length) + 8;
  switch (detail.desc.typeName) {
    case ErrorInfoSchema.typeName: {
      const reason = cutText(String(value["reason"] ?? ""), errorLimits.maxReasonLength);
      const domain = cutText(String(value["domain"] ?? ""), errorLimits.maxReasonLength);
      let size = overhead + stringField(reason) + stringField(domain);
      const metadata: Record<string, string> = {};
      let entries = 0;
      const source = (value["metadata"] ?? {}) as Record<string, string>;
      for (const key in source) {
        if (entries === errorLimits.maxErrorInfoEntries) break;
        const k = cutText(key, errorLimits.maxErrorInfoKeyLength);
        const v = cutText(String(source[key]), errorLimits.maxErrorInfoValueLength);
        const entry = field(stringField(k) + stringField(v));
        if (size + entry > budget || k in metadata) continue;
        metadata[k] = v;
        size += entry;
        entries++;
      }
      return { desc: ErrorInfoSchema, value: { reason, domain, metadata } } as OutgoingDetail;
    }
    case BadRequestSchema.typeName: {
      let size = overhead;
      const fieldViolations: { field: string; description: string; reason: string }[] = [];
      for (const v of (value["fieldViolations"] ?? []) as AnyInit[]) {
        if (fieldViolations.length === errorLimits.maxViolations) break;
        const kept = {
          field: cutText(String(v["field"] ?? ""), errorLimits.maxFieldLength),
          description: cutText(String(v["description"] ?? ""), errorLimits.maxDescriptionLength),
          reason: cutText(String(v["reason"] ?? ""), errorLimits.maxReasonLength),
        };
        const entry = field(stringField(kept.field) + stringField(kept.description) + stringField(kept.reason));
        if (size + entry > budget) break;
        fieldViolations.push(kept);
        size += entry;
      }
      return { desc: BadRequestSchema, value: { fieldViolations } } as OutgoingDetail;
    }
    default:
      return detail;
  }
}

/** The size of `detail` packed as a google.protobuf.Any inside Status.details (an upper bound for Sluice's kinds). */
function anyBytes(detail: Detail): number {
  const typeName = "desc" in detail ? detail.desc.typeName : detail.type;
  return field(field(typeUrlPrefixLength + typeName.length) + field(valueBytes(detail)));
}

function valueBytes(detail: Detail): number {
  if (!("desc" in detail)) return detail.value.byteLength;
  const value = detail.value as AnyInit;
  switch (detail.desc.typeName) {
    case ErrorInfoSchema.typeName: {
      let size = stringField(value["reason"]) + stringField(value["domain"]);
      const metadata = (value["metadata"] ?? {}) as Record<string, string>;
      for (const key in metadata) size += field(stringField(key) + stringField(metadata[key]));
      return size;
    }
    case BadRequestSchema.typeName: {
      let size = 0;
      for (const v of (value["fieldViolations"] ?? []) as AnyInit[]) {
        let violation = stringField(v["field"]) + stringField(v["description"]) + stringField(v["reason"]);
        if (v["localizedMessage"] !== undefined) {
          const localized = v["localizedMessage"] as AnyInit;
          violation += field(stringField(localized["locale"]) + stringField(localized["message"]));
        }
        size += field(violation);
      }
      return size;
    }
    case RetryInfoSchema.typeName:
      return retryInfoMaxBytes;
    default:
      return toBinary(detail.desc, create(detail.desc, detail.value)).byteLength;
  }
}

/** A length-delimited field of `length` bytes: tag, length varint, bytes. */
function field(length: number): number {
  return 1 + varintBytes(length) + length;
}

/** A string field (counted even when empty: an upper bound). */
function stringField(text: unknown): number {
  return typeof text === "string" ? field(utf8Length(text)) : 0;
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** ES2024 (Node ≥ 20); the project's `lib` is ES2023. */
type WellFormedString = string & { isWellFormed(): boolean };
