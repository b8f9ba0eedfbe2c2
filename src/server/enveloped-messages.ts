import type { Readable, Writable } from "node:stream";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { concatBody, readBody } from "./read-body.js";

/**
 * Length-prefixed messages (gRPC and Connect streaming framing: flags byte, big-endian
 * uint32 length, bytes) for the fast lanes, with connect's own errors for every protocol
 * violation so a lane answers exactly as connect-node would.
 */

/** Connect's end-of-stream flag (a request envelope carrying it is skipped, as connect does). */
const endStreamFlag = 0b10;
const compressedFlag = 0b01;

/**
 * Reads the request's one message (unary and server-streaming calls carry exactly one) and
 * parses it with `parse`. The size limit is enforced on the prefix, before buffering what
 * it announces.
 */
export async function readSingleMessage(
  req: Readable,
  kind: "unary" | "server-streaming",
  maxBytes: number,
  parse: (bytes: Uint8Array) => unknown,
  options: { skipEndStream: boolean },
): Promise<unknown> {
  /** The message's length once its 5-byte prefix has arrived. */
  let length = -1;
  const { chunks, size } = await readBody(req, (chunks, size) => {
    if (length === -1 && size >= 5) {
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[], size);
      length = head.readUInt32BE(1);
      if (length > maxBytes) {
        throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${maxBytes}`, Code.ResourceExhausted);
      }
    }
    if (length !== -1 && size > 5 + length) {
      throw new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
    }
  });
  // Built only when thrown: an error's stack capture costs more than the rest of this read.
  const missing = (): ConnectError =>
    new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  if (size === 0) throw missing();
  if (size < 5 || size < 5 + length) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const body = concatBody({ chunks, size });
  const flags = body[0]!;
  if ((flags & compressedFlag) === compressedFlag) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  }
  if (options.skipEndStream && (flags & endStreamFlag) === endStreamFlag) throw missing();
  return parse(body.subarray(5, 5 + length));
}

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

/** Waits for the response to take more data (a slow reader), or for the call to end. */
export function drained(res: Pick<Writable, "once" | "off">, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** connect's binary parse, with its error for bytes that are not the message. */
export function parseBinary(schema: DescMessage, bytes: Uint8Array): unknown {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.Internal);
  }
}
