import { fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkBinaryElements } from "./element-budget.js";

/**
 * Length-prefixed messages (gRPC and Connect streaming framing: flags byte, big-endian
 * uint32 length, bytes): building envelopes and parsing their payload, with connect's own
 * error messages so a lane answers as connect-node would. Pure: no I/O.
 */

/** Connect's end-of-stream flag (a request envelope carrying it is skipped, as connect does). */
export const endStreamFlag = 0b10;
export const compressedFlag = 0b01;

/** One length-prefixed message. */
export function envelope(bytes: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.allocUnsafe(5 + bytes.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(bytes.byteLength, 1);
  frame.set(bytes, 5);
  return frame;
}

/** One length-prefixed message of UTF-8 text (Connect JSON streaming), encoded straight into its envelope. */
export function envelopeText(text: string, flags = 0): Buffer {
  const length = Buffer.byteLength(text, "utf8");
  const frame = Buffer.allocUnsafe(5 + length);
  frame[0] = flags;
  frame.writeUInt32BE(length, 1);
  frame.write(text, 5, length, "utf8");
  return frame;
}

/** A Connect end-of-stream envelope around its (JSON) payload. */
export function endStreamEnvelope(json: string): Buffer {
  return envelopeText(json, endStreamFlag);
}

/**
 * connect's binary parse of a request, with its message for bytes that are not the message —
 * but INVALID_ARGUMENT where connect says INTERNAL: bytes a client sent that do not parse
 * (a bad tag, a truncated field, a proto3 string that is not UTF-8, which protobuf-es
 * checks) are the client's error, not the server's. A request over the element budget is
 * refused before parsing (element-budget.ts; free for bodies under 128 KiB).
 */
export function parseBinary(schema: DescMessage, bytes: Uint8Array): Message {
  checkBinaryElements(schema, bytes);
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}
