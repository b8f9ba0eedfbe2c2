import type { TLSSocket } from "node:tls";
import type { PeerCertificate } from "./peer.js";

/** What a TLS socket (or node's HTTP/2 proxy of one) offers for reading the client certificate. */
type CertificateSocket = Pick<TLSSocket, "authorized" | "getPeerCertificate">;

/** Per socket (or socket proxy): getPeerCertificate builds a fresh object with every call, so it is read once. */
const cache = new WeakMap<object, PeerCertificate | "unverified" | undefined>();

/**
 * The client certificate of a connection (see Peer.certificate). Anything that is not a
 * TLS socket (cleartext, a closed stream's missing socket) has none.
 */
export function socketCertificate(socket: object | null | undefined): PeerCertificate | "unverified" | undefined {
  if (socket === null || socket === undefined) return undefined;
  if (cache.has(socket)) return cache.get(socket);
  // Asked through `get`, not `in`: node's HTTP/2 session socket is a Proxy over the session,
  // whose `get` reaches the TLS socket but whose `in` sees only the session.
  const tlsSocket = socket as Partial<CertificateSocket>;
  if (typeof tlsSocket.getPeerCertificate !== "function") return undefined;
  const cert = tlsSocket.getPeerCertificate();
  let read: PeerCertificate | "unverified" | undefined;
  // No certificate presented: node returns an empty object (or null once the socket is gone).
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) read = undefined;
  else if (tlsSocket.authorized !== true) read = "unverified";
  else read = { subjectCN: singleCommonName(cert.subject?.CN), uris: uriSans(cert.subjectaltname) };
  cache.set(socket, read);
  return read;
}

/** A subject with several CNs names no one in particular: none is used. */
function singleCommonName(cn: string | string[] | undefined): string | undefined {
  return typeof cn === "string" && cn !== "" ? cn : undefined;
}

/**
 * The `URI:` entries of node's subjectaltname string ("DNS:a, URI:spiffe://x/y"); node
 * writes a value holding a comma or quote as a JSON string, which is decoded.
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined) return [];
  const uris: string[] = [];
  for (const match of subjectAltName.matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = match[1] as string;
    try {
      uris.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
    } catch {
      // A value node did not quote as JSON: not an id anyone configured.
    }
  }
  return uris;
}
