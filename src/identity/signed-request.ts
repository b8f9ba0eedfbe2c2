import { createHmac, timingSafeEqual } from "node:crypto";
import type { SluiceConfig } from "../config/schema.js";
import type { Identity } from "./identity.js";
import { createModelAccess } from "./model-access.js";
import type { Peer } from "./peer.js";

/**
 * Why a signed request was refused (the access line only): a header missing or malformed,
 * an unknown key id, a timestamp outside `auth.signedRequests.windowSec`, a body the server
 * could not hash (served by connect-node: GET, gRPC over HTTP/1.1, other encodings), a
 * signature that does not match, a nonce already used with the key, or too many nonces
 * remembered to take another.
 */
export type SignatureRefusal =
  | "signature_malformed"
  | "signature_unknown"
  | "signature_stale"
  | "signature_unsupported"
  | "signature_invalid"
  | "signature_replayed"
  | "signature_busy";

/** The request line a signature covers, as the server received it. */
export interface SignedRequestLine {
  /** The HTTP method (a connect request's `requestMethod`). */
  readonly requestMethod: string;
  /** Absolute (`https://host/pkg.Service/Method`) or a path; the signed part is the path, without a query. */
  readonly url: string;
}

export interface SignedRequests {
  /**
   * Undefined: the call carries no `x-sluice-signature` (another credential decides). A
   * promise only when nonces are kept in a shared store (Redis).
   */
  verify(
    header: Headers,
    peer: Peer | undefined,
    request: SignedRequestLine | undefined,
  ): Identity | SignatureRefusal | undefined | Promise<Identity | SignatureRefusal>;
}

/**
 * Nonces shared by every replica (`state.redis`): true the first time a key is seen within
 * `ttlMs`. A rejection (the store unreachable) falls back to this process's own nonces.
 */
export interface SharedNonces {
  rememberOnce(key: string, ttlMs: number, now: number): boolean | Promise<boolean>;
}

/** Nonces remembered at most: past it new signed requests are refused until old ones expire (never forgotten early). */
export const maxRememberedNonces = 100_000;

const nonceShape = /^[\x21-\x7e]{16,128}$/;
const signatureShape = /^[0-9a-f]{64}$/;
const timestampShape = /^\d{1,12}$/;

/** What a caller signs: `METHOD\nPATH\nTIMESTAMP\nNONCE\nSHA256_HEX(body)`, HMAC-SHA256 with the key's secret, lowercase hex. */
export function signatureOf(
  secret: string,
  method: string,
  path: string,
  timestamp: string,
  nonce: string,
  bodySha256: string,
): string {
  return createHmac("sha256", secret).update(`${method}\n${path}\n${timestamp}\n${nonce}\n${bodySha256}`).digest("hex");
}

/** The path of a request URL, without scheme, authority or query. */
export function requestPath(url: string): string {
  let path = url;
  const scheme = path.indexOf("://");
  if (scheme !== -1) {
    const slash = path.indexOf("/", scheme + 3);
    path = slash === -1 ? "/" : path.slice(slash);
  }
  const query = path.indexOf("?");
  return query === -1 ? path : path.slice(0, query);
}

/**
 * Signed requests (`tenants.*.signingKeys`): for callers that cannot hold a bearer token
 * safely. The secret never travels; a captured request cannot be replayed (its nonce is
 * remembered for the window) or kept for later (its timestamp goes stale). Nonces live in
 * `shared` (Redis, `state.redis`: every replica sees every nonce) or, without it — or while it
 * does not answer — in this process.
 * Undefined when no tenant has a signing key.
 */
export function createSignedRequests(
  config: Pick<SluiceConfig, "tenants" | "auth">,
  now: () => number,
  maxNonces = maxRememberedNonces,
  shared?: SharedNonces,
): SignedRequests | undefined {
  const keys = new Map<string, { readonly secret: string; readonly identity: Identity }>();
  for (const [tenant, { signingKeys, models }] of Object.entries(config.tenants)) {
    const access = createModelAccess(models);
    for (const { id, secret } of signingKeys) {
      keys.set(id, { secret, identity: Object.freeze({ tenant, keyId: id, method: "signature", models: access }) });
    }
  }
  if (keys.size === 0) return undefined;
  const windowMs = config.auth.signedRequests.windowSec * 1000;
  /** Key id and nonce → when it may be forgotten; insertion order is expiry order (one lifetime for all). */
  const nonces = new Map<string, number>();

  function forgetExpired(at: number): void {
    for (const [nonce, expires] of nonces) {
      if (expires > at) return;
      nonces.delete(nonce);
    }
  }

  return {
    verify(header, peer, request) {
      const signature = header.get("x-sluice-signature");
      if (signature === null) return undefined;
      const keyId = header.get("x-sluice-key-id");
      const timestamp = header.get("x-sluice-timestamp");
      const nonce = header.get("x-sluice-nonce");
      if (
        keyId === null ||
        timestamp === null ||
        nonce === null ||
        request === undefined ||
        !signatureShape.test(signature) ||
        !timestampShape.test(timestamp) ||
        !nonceShape.test(nonce)
      ) {
        return "signature_malformed";
      }
      const key = keys.get(keyId);
      if (key === undefined) return "signature_unknown";
      const at = now();
      if (Math.abs(Number(timestamp) * 1000 - at) > windowMs) return "signature_stale";
      const bodySha256 = peer?.bodySha256?.();
      if (bodySha256 === undefined) return "signature_unsupported";
      const expected = signatureOf(key.secret, request.requestMethod, requestPath(request.url), timestamp, nonce, bodySha256);
      if (!timingSafeEqual(Buffer.from(expected, "latin1"), Buffer.from(signature, "latin1"))) return "signature_invalid";
      // Only a valid signature spends its nonce: a forger cannot use up someone else's.
      const remembered = `${keyId}\0${nonce}`;
      const local = (): Identity | SignatureRefusal => {
        forgetExpired(at);
        if (nonces.has(remembered)) return "signature_replayed";
        if (nonces.size >= maxNonces) return "signature_busy";
        // A timestamp is accepted until `windowMs` after it, at most `windowMs` from now: kept twice that.
        nonces.set(remembered, at + 2 * windowMs);
        return key.identity;
      };
      if (shared === undefined) return local();
      const firstTime = (first: boolean) => (first ? key.identity : "signature_replayed");
      try {
        const seen = shared.rememberOnce(`nonce/${remembered}`, 2 * windowMs, at);
        return seen instanceof Promise ? seen.then(firstTime, local) : firstTime(seen);
      } catch {
        return local();
      }
    },
  };
}
