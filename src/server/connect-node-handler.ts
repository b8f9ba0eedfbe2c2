import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { createContextValues } from "@connectrpc/connect";
import { socketCertificate } from "../identity/mtls-socket.js";
import { peerKey } from "../identity/peer.js";
import { strictUtf8Decoder } from "../wire/strict-utf8.js";
import type { NodeRequestHandler } from "./one-port-listener.js";
import { requestCompressions } from "./request-compression.js";
import { clampTimeoutHeaders } from "./timeout-clamp.js";

export interface ConnectNodeHandlerOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  readonly readMaxBytes: number;
  readonly shutdownSignal: AbortSignal;
  /** The server's deadline cap (timeout-clamp.ts). */
  readonly maxDeadlineMs: number;
}

/**
 * connect-node (`connectNodeAdapter`) as Sluice serves it — the same rules for bad input
 * and deadlines as the fast lanes:
 * - JSON that is not UTF-8 is INVALID_ARGUMENT (a fatal decoder, where connect's default
 *   replaces the bytes with U+FFFD);
 * - a request body that does not decompress is INVALID_ARGUMENT (request-compression.ts);
 * - a deadline above `maxDeadlineMs` is clamped to it (timeout-clamp.ts), not fired at once;
 * - a `connect-protocol-version` other than 1 is INVALID_ARGUMENT, in connect's words:
 *   connect checks the header only when it requires it (`requireConnectProtocolHeader`),
 *   which would also refuse curl and every client that leaves it out, as the protocol
 *   allows. So a request that names another version is served by a second adapter that
 *   requires it — built on the first such request — and every other by the lenient one.
 */
export function createConnectNodeHandler(options: ConnectNodeHandlerOptions): NodeRequestHandler {
  const { maxDeadlineMs } = options;
  // connect's JSON serialization reads `textDecoder` from jsonOptions (its type leaves it out).
  const jsonOptions: ConnectNodeAdapterOptions["jsonOptions"] & { textDecoder: typeof strictUtf8Decoder } = {
    ...options.jsonOptions,
    textDecoder: strictUtf8Decoder,
  };
  const adapterOptions = (): ConnectNodeAdapterOptions => ({
    routes: options.routes,
    jsonOptions,
    acceptCompression: [...requestCompressions],
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    // The caller's address and client certificate for the interceptors (network allow-lists,
    // mTLS), as the lanes give them.
    contextValues: (req) =>
      createContextValues().set(peerKey, {
        remoteAddress: () => req.socket?.remoteAddress,
        certificate: () => socketCertificate(req.socket),
      }),
  });
  const lenient = connectNodeAdapter(adapterOptions()) as NodeRequestHandler;
  let strict: NodeRequestHandler | undefined;

  return function connectNode(req, res) {
    const headers = req.headers;
    if (headers["connect-timeout-ms"] !== undefined || headers["grpc-timeout"] !== undefined) {
      clampTimeoutHeaders(headers, maxDeadlineMs);
    }
    const version = headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") {
      strict ??= connectNodeAdapter({ ...adapterOptions(), requireConnectProtocolHeader: true }) as NodeRequestHandler;
      strict(req, res);
      return;
    }
    lenient(req, res);
  };
}
