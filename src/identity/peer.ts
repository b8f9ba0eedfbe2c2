import { createContextKey } from "@connectrpc/connect";

/** A client certificate the TLS server verified against `server.tls.clientCaFile`. */
export interface PeerCertificate {
  /** The subject's common name (CN); unset when it has none, or more than one. */
  readonly subjectCN?: string | undefined;
  /** The URI subject alternative names (e.g. a SPIFFE id `spiffe://example.org/team-a`). */
  readonly uris: readonly string[];
}

/** The other end of a call's connection, read only when a step needs it (network allow-lists, mTLS). */
export interface Peer {
  /** The caller's IP address as the socket reports it (`::ffff:`-mapped on dual-stack sockets); undefined once closed. */
  remoteAddress(): string | undefined;
  /**
   * The caller's client certificate: the certificate when the TLS handshake verified it
   * against the configured CA, "unverified" when one was presented that did not verify
   * (another CA, expired), undefined when none was (or the connection is not TLS). Unset
   * method: no certificates at all (in-process transports, tests).
   */
  certificate?(): PeerCertificate | "unverified" | undefined;
  /**
   * Lowercase hex SHA-256 of the raw request body as it was sent, for a signed request
   * (the fast lanes hash it while reading, only when `x-sluice-signature` is present).
   * Unset method or undefined: the body was not hashed (connect-node serves the call), so a
   * signature cannot be verified.
   */
  bodySha256?(): string | undefined;
}

/** Set by the server for every call (HandlerContext.values). Unset: no peer known (in-process transports). */
export const peerKey = createContextKey<Peer | undefined>(undefined, { description: "sluice call peer" });
