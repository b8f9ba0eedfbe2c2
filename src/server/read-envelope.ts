import type { Readable, Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { concatBody, readBody } from "./read-body.js";

import { compressedFlag, endStreamFlag } from "../wire/envelope.js";

/**
 * Reading a request's enveloped message off the socket, and waiting out a slow reader,
 * for the fast lanes: connect's own errors for every protocol violation, so a lane
 * answers exactly as connect-node would.
 */

/**
 * Reads the request's one message (unary and server-streaming calls carry exactly one) and
 * parses it with `parse`. The size limit is enforced on the prefix, before buffering what
 * it announces.
 */
export async function readSingleMessage<T>(
  req: Readable,
  kind: "unary" | "server-streaming",
  maxBytes: number,
  parse: (bytes: Uint8Array) => T,
  options: { skipEndStream: boolean },
): Promise<T> {
  /** The message's length once its 5-byte prefix has arrived. */
  let length = -1;
  const { chunks, size } = await readBody(req, (chunks, size) => {
    if (length === -1 && size >= 5) {
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Buffer[], size);
      length = head.readUInt32BE(1);
      if (length > maxBytes) {
        throw new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${maxBytes}`,
          Code.ResourceExhausted,
        );
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
