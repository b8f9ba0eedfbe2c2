import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/**
 * The request compressions connect-node accepts: its own gzip and brotli (with their
 * `readMaxBytes` limit on the decompressed size: RESOURCE_EXHAUSTED), except that a body
 * that does not decompress is INVALID_ARGUMENT — the caller's bytes are bad, whatever
 * zlib's error code. connect-node maps zlib's data errors so, but not brotli's (a corrupt
 * `br` body was INTERNAL / HTTP 500 while corrupt gzip was 400).
 */
export const requestCompressions: readonly Compression[] = [clientBytes(compressionGzip), clientBytes(compressionBrotli)];

function clientBytes(compression: Compression): Compression {
  return {
    name: compression.name,
    compress: (bytes) => compression.compress(bytes),
    decompress: (bytes, readMaxBytes) =>
      compression.decompress(bytes, readMaxBytes).catch((err: unknown) => {
        const error = ConnectError.from(err);
        if (error.code !== Code.Internal) throw error;
        throw new ConnectError(error.rawMessage, Code.InvalidArgument, undefined, undefined, error.cause);
      }),
  };
}
