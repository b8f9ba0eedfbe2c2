import type { Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressedFlag } from "../wire/envelope.js";
import { concatBody, readBody, type BodyCheck } from "./read-body.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

/*
 * Reading a gRPC-Web request's one message (unary and server-streaming calls carry exactly
 * one), in binary or text mode, with connect's own errors for every protocol violation, as
 * read-envelope.ts does for the other lanes — gRPC-Web differs in the flag a client's
 * trailer envelope carries (skipped, as connect skips it) and in text mode.
 *
 * Text mode (`application/grpc-web-text`, the stock grpc-web JavaScript client's default)
 * sends the envelope base64-encoded; a client may send several base64 chunks one after the
 * other, each padded, so the body is decoded chunk by chunk (Node's decoder stops at the
 * first padding).
 */

/** gRPC-Web's trailer flag (connect's `trailerFlag`). */
export const grpcWebTrailerFlag = 0b1000_0000;

type Kind = "unary" | "server-streaming";

/**
 * The request's one message, parsed with `parse`. Binary mode enforces the size limit on the
 * envelope's prefix, before buffering what it announces. Text mode does the same once the
 * prefix's 8 base64 characters have arrived, and refuses a body larger than twice the limit
 * (base64 is 4/3 of what it carries, plus padding per chunk) before decoding it. A
 * compressed envelope (flag 1) is decompressed with `compression` (lane-decompress.ts),
 * its output limited to `maxBytes` too; without one it is connect's INTERNAL.
 */
export async function readGrpcWebMessage<T>(
  req: Readable,
  text: boolean,
  kind: Kind,
  maxBytes: number,
  budget: RequestByteBudget,
  parse: (bytes: Uint8Array) => T,
  compression?: Compression,
  digest?: Hash,
): Promise<T> {
  const read = await readBody(req, budget, text ? textCheck(maxBytes) : binaryCheck(kind, maxBytes), digest);
  const body = concatBody(read);
  const envelope = singleMessage(text ? decodeGrpcWebText(body) : body, kind, maxBytes);
  const flags = envelope[0]!;
  const payload = envelope.subarray(5);
  if ((flags & compressedFlag) === 0) return parse(payload);
  if (compression === undefined) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  }
  const message = await compression.decompress(payload, maxBytes);
  // In connect's order: decompressed, then the trailer flag looked at.
  if ((flags & grpcWebTrailerFlag) === grpcWebTrailerFlag) throw missingMessage(kind);
  return parse(message);
}

function binaryCheck(kind: Kind, maxBytes: number): BodyCheck {
  /** The message's length once its 5-byte prefix has arrived. */
  let length = -1;
  return (chunks, size) => {
    if (length === -1 && size >= 5) {
      length = headOf(chunks, size).readUInt32BE(1);
      if (length > maxBytes) throw tooLarge(length, maxBytes);
    }
    if (length !== -1 && size > 5 + length) throw extraMessage(kind);
  };
}

function textCheck(maxBytes: number): BodyCheck {
  const maxTextBytes = 2 * (5 + maxBytes) + 8;
  let prefixChecked = false;
  return (chunks, size) => {
    if (size > maxTextBytes) {
      throw new ConnectError(
        `grpc-web-text request of ${size} bytes is larger than configured readMaxBytes ${maxBytes} allows in base64`,
        Code.ResourceExhausted,
      );
    }
    if (!prefixChecked && size >= 8) {
      prefixChecked = true;
      // The first 8 characters carry the 5-byte prefix (unless a client padded a shorter first chunk).
      const head = headOf(chunks, size).toString("latin1", 0, 8);
      if (!base64Head.test(head)) throw invalidBase64();
      const prefix = Buffer.from(head, "base64");
      if (prefix.byteLength >= 5) {
        const length = prefix.readUInt32BE(1);
        if (length > maxBytes) throw tooLarge(length, maxBytes);
      }
    }
  };
}

const base64Head = /^[A-Za-z0-9+/=]{8}$/;

function headOf(chunks: readonly Buffer[], size: number): Buffer {
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[], size);
}

/**
 * The checks connect makes on a request's envelopes, on a whole (decoded) body: it is one
 * envelope. A trailer envelope is refused here unless compressed (connect decompresses
 * before it looks).
 */
function singleMessage(body: Buffer, kind: Kind, maxBytes: number): Buffer {
  const size = body.byteLength;
  if (size === 0) throw missingMessage(kind);
  if (size < 5) throw incompleteEnvelope();
  const length = body.readUInt32BE(1);
  if (length > maxBytes) throw tooLarge(length, maxBytes);
  if (size < 5 + length) throw incompleteEnvelope();
  if (size > 5 + length) throw extraMessage(kind);
  const flags = body[0]!;
  if ((flags & (compressedFlag | grpcWebTrailerFlag)) === grpcWebTrailerFlag) throw missingMessage(kind);
  return body;
}

const equalsSign = 0x3d;

/**
 * A grpc-web-text body: one or more base64 chunks, each a multiple of 4 characters, padded.
 * INVALID_ARGUMENT for anything else (a character outside base64, padding inside a group,
 * a length that is not a multiple of 4).
 */
export function decodeGrpcWebText(text: Buffer): Buffer {
  if (text.byteLength % 4 !== 0) throw invalidBase64();
  let start = 0;
  let first: Buffer | undefined;
  let parts: Buffer[] | undefined;
  while (start < text.byteLength) {
    const pad = text.indexOf(equalsSign, start);
    // A chunk ends with the 4-character group holding its first padding character.
    const end = pad === -1 ? text.byteLength : pad - (pad % 4) + 4;
    const part = decodeChunk(text, start, end);
    if (first === undefined) first = part;
    else (parts ??= [first]).push(part);
    start = end;
  }
  if (first === undefined) return Buffer.alloc(0);
  return parts === undefined ? first : Buffer.concat(parts);
}

function decodeChunk(text: Buffer, start: number, end: number): Buffer {
  let padding = 0;
  while (padding < 2 && text[end - 1 - padding] === equalsSign) padding++;
  const decoded = Buffer.from(text.toString("latin1", start, end), "base64");
  // Node's decoder skips what is not base64 and stops at padding: a short result is either.
  if (decoded.byteLength !== ((end - start) / 4) * 3 - padding) throw invalidBase64();
  return decoded;
}

function invalidBase64(): ConnectError {
  return new ConnectError("protocol error: grpc-web-text request body is not valid base64", Code.InvalidArgument);
}

function tooLarge(length: number, maxBytes: number): ConnectError {
  return new ConnectError(`message size ${length} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
}

function missingMessage(kind: Kind): ConnectError {
  return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
}

function extraMessage(kind: Kind): ConnectError {
  return new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
}

function incompleteEnvelope(): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}
