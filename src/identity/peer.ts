import { createContextKey } from "@connectrpc/connect";

/** The other end of a call's connection, read only when a step needs it (network allow-lists). */
export interface Peer {
  /** The caller's IP address as the socket reports it (`::ffff:`-mapped on dual-stack sockets); undefined once closed. */
  remoteAddress(): string | undefined;
}

/** Set by the server for every call (HandlerContext.values). Unset: no peer known (in-process transports). */
export const peerKey = createContextKey<Peer | undefined>(undefined, { description: "sluice call peer" });
