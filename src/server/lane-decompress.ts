import type { Compression } from "@connectrpc/connect/protocol";
import { requestCompressions } from "./request-compression.js";

/*
 * Compressed requests on the fast lanes: the compressions connect-node accepts
 * (request-compression.ts), so a lane reads a compressed body exactly as connect-node does —
 * asynchronously (node:zlib), refusing output past the request limit (`maxOutputLength`:
 * RESOURCE_EXHAUSTED, "message is larger than configured readMaxBytes N after
 * decompression") and a body that does not decompress (INVALID_ARGUMENT, "decompression
 * failed").
 *
 * Responses stay uncompressed: every protocol lets the server answer identity whatever the
 * client accepts (`accept-encoding`, `grpc-accept-encoding`, `connect-accept-encoding` list
 * what it can read, identity always among them) — where connect-node, given a compressed
 * request, may compress an answer of 1 KiB or more.
 */

/**
 * A request's compression, from its header (`content-encoding`, `connect-content-encoding`,
 * `grpc-encoding`): undefined when absent or identity (nothing to do), null when the lane
 * does not know it — the lane then declines and connect-node answers UNIMPLEMENTED with the
 * encodings it supports, in the protocol's words.
 */
export function requestCompression(value: string | string[] | undefined): Compression | undefined | null {
  if (value === undefined || value === "identity") return undefined;
  for (const compression of requestCompressions) {
    if (compression.name === value) return compression;
  }
  return null;
}
