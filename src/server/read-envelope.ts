import type { Hash } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressedFlag, endStreamFlag } from "../wire/envelope.js";
import { concatBody, readBody } from "./read-body.js";
import type { RequestByteBudget } from "./request-byte-budget.js";

/**
 * Reading a request's enveloped message off the socket, and waiting out a slow reader,
 * for the fast lanes: connect's own errors for every protocol violation, so a lane
 * answers exactly as connect-node would.
 */

/**
 * Reads the request's one message (unary and server-streaming calls carry exactly one) and
 * parses it with `parse`. The size limit is enforced on the prefix, before buffering what
 * it announces. A compressed envelope (flag 1) is decompressed with the request's
 * `compression` (lane-decompress.ts), its output limited to `maxBytes` too; without one it
 * is connect's INTERNAL.
 */
export async function readSingleMessage<T>(
  req: Readable,
  kind: "unary" | "server-streaming",
  maxBytes: number,
  parse: (bytes: Uint8Array) => T,
  options: {
    readonly skipEndStream: boolean;
    readonly budget: RequestByteBudget;
    readonly compression?: Compression | undefined;
    /** Sees the raw body bytes (a signed request: FastCall.bodyDigest). */
    readonly digest?: Hash | undefined;
  },
): Promise<T> {
  /** The message's length once its 5-byte prefix has arrived. */
  let length = -1;
  const { chunks, size } = await readBody(
    req,
    options.budget,
    (chunks, size) => {
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
    },
    options.digest,
  );
  // Built only when thrown: an error's stack capture costs more than the rest of this read.
  const missing = (): ConnectError =>
    new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  if (size === 0) throw missing();
  if (size < 5 || size < 5 + length) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const body = concatBody({ chunks, size });
  const flags = body[0]!;
  let payload: Uint8Array = body.subarray(5, 5 + length);
  // In connect's order: decompress, then look at the end-stream flag.
  if ((flags & compressedFlag) === compressedFlag) {
    if (options.compression === undefined) {
      throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
    }
    payload = await options.compression.decompress(payload, maxBytes);
  }
  if (options.skipEndStream && (flags & endStreamFlag) === endStreamFlag) throw missing();
  return parse(payload);
}

/**
 * Waits for the response to take more data (a slow reader), or for the call to end. Not
 * forever: a caller that takes nothing for `server.writeStallTimeoutMs` has its stream reset
 * or connection closed by the listener's sweep (connection-sweep.ts), which ends this wait
 * ("close") and cancels the call — no timer per wait here.
 */
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
