import type { SluiceConfig } from "../config/schema.js";
import { createApiKeys, type KeyRefusal } from "./api-keys.js";
import { anonymous, type Identity } from "./identity.js";
import { bearerJwt } from "./jwt-bearer.js";
import { createJwtVerifier, type JwtRefusal, type JwtVerifierDeps } from "./jwt-verifier.js";
import { createMtlsIdentities } from "./mtls-identities.js";
import { createNetworkAllowList, type NetworkAllowList } from "./network-allow-list.js";
import type { Peer } from "./peer.js";
import { presentedKey } from "./presented-key.js";
import { createSignedRequests, type SharedNonces, type SignatureRefusal, type SignedRequestLine } from "./signed-request.js";

/**
 * Why a call was refused, for the operator's access line (the caller always gets the
 * same message): no credentials, a malformed one, an unknown / expired / disabled key, a
 * JWT refused (`jwt_*`, see JwtRefusal), or a credential used from an address its tenant
 * (or `auth.allowFrom`) does not allow; with mTLS, a client certificate that did not verify
 * against `server.tls.clientCaFile` (`mtls_unverified`) or that names no tenant (`mtls_unknown`);
 * a signed request refused (`signature_*`, see SignatureRefusal).
 */
export type AuthRefusal =
  | "missing"
  | "malformed"
  | KeyRefusal
  | JwtRefusal
  | "address"
  | "mtls_unverified"
  | "mtls_unknown"
  | SignatureRefusal;

export interface AuthOutcome {
  readonly identity: Identity | undefined;
  /** Set when refused. */
  readonly refusal: AuthRefusal | undefined;
  /** The tenant a refused credential belonged to, when known (an address refusal). */
  readonly tenant?: string;
}

/** Who a call is from, by its headers and peer. */
export interface Authenticator {
  /** False: no tenants are configured, every call is anonymous (subject to `auth.allowFrom`). */
  readonly required: boolean;
  /** False: nothing to check at all (no tenants, no `auth.allowFrom`): the step can be left out. */
  readonly enabled: boolean;
  /**
   * A plain value when nothing needs waiting for (API keys, anonymous calls, a JWT verified
   * before); a promise only while a JWT is first verified (or its JWKS fetched).
   */
  authenticate(header: Headers, peer: Peer | undefined, request?: SignedRequestLine): AuthOutcome | Promise<AuthOutcome>;
  /** Stops watching a JWKS file. */
  close(): void;
}

export interface AuthenticatorDeps {
  /** Milliseconds since the epoch (key and JWT expiry); tests pass a fixed clock. */
  readonly now?: () => number;
  /** Where a JWKS file that stopped reading is reported. */
  readonly logger?: JwtVerifierDeps["logger"];
  /** The JWT keys, for tests (see JwtVerifierDeps.keySet). */
  readonly jwtKeySet?: JwtVerifierDeps["keySet"];
  /** Signed-request nonces shared by replicas (`state.redis`); unset: this process's own. */
  readonly nonces?: SharedNonces;
}

/**
 * API keys per tenant (`tenants.*.apiKeys`), signed requests (`tenants.*.signingKeys`:
 * signed-request.ts) and, with `auth.jwt`, bearer JWTs naming a
 * tenant (a bearer shaped like a JWT is verified as one, anything else is an API key),
 * with network allow-lists: global
 * (`auth.allowFrom`) and per tenant (`tenants.*.allowFrom`). With no tenants configured
 * calls are anonymous: allowed only on loopback unless `auth.allowAnonymous` (main.ts
 * refuses to start otherwise: see `anonymousListenProblem`).
 */
export function createAuthenticator(config: SluiceConfig, deps: AuthenticatorDeps = {}): Authenticator {
  const now = deps.now ?? Date.now;
  const keys = createApiKeys(config.tenants);
  const required = Object.keys(config.tenants).length > 0;
  const global = config.auth.allowFrom === undefined ? undefined : createNetworkAllowList(config.auth.allowFrom);
  const perTenant = new Map<string, NetworkAllowList>();
  for (const [tenant, { allowFrom }] of Object.entries(config.tenants)) {
    if (allowFrom !== undefined) perTenant.set(tenant, createNetworkAllowList(allowFrom));
  }
  const noPeer: Peer = { remoteAddress: () => undefined };
  const mtls = createMtlsIdentities(config.tenants);
  const signed = createSignedRequests(config, now, undefined, deps.nonces);
  const jwt =
    config.auth.jwt === undefined
      ? undefined
      : createJwtVerifier(config.auth.jwt, config.tenants, { now, logger: deps.logger, keySet: deps.jwtKeySet });

  function refuse(refusal: AuthRefusal, tenant?: string): AuthOutcome {
    return { identity: undefined, refusal, tenant };
  }

  /** A verified credential, still subject to its tenant's `allowFrom`. */
  function admit(verified: Identity | AuthRefusal, peer: Peer | undefined): AuthOutcome {
    if (typeof verified === "string") return refuse(verified);
    const allowList = perTenant.get(verified.tenant);
    if (allowList !== undefined && !allowList.allows((peer ?? noPeer).remoteAddress())) {
      return refuse("address", verified.tenant);
    }
    return { identity: verified, refusal: undefined };
  }

  return {
    required,
    enabled: required || global !== undefined,
    authenticate(header, peer, request) {
      if (global !== undefined && !global.allows((peer ?? noPeer).remoteAddress())) return refuse("address");
      if (!required) return { identity: anonymous, refusal: undefined };
      // A signature, when present, decides: a request that says it is signed is verified as one.
      const verified = signed?.verify(header, peer, request);
      if (verified !== undefined) {
        return verified instanceof Promise ? verified.then((v) => admit(v, peer)) : admit(verified, peer);
      }
      if (jwt !== undefined) {
        const token = bearerJwt(header);
        if (token !== undefined) {
          const verified = jwt.verify(token);
          return verified instanceof Promise ? verified.then((v) => admit(v, peer)) : admit(verified, peer);
        }
      }
      const key = presentedKey(header);
      if (key === undefined) {
        const certificate = mtls === undefined ? undefined : peer?.certificate?.();
        if (certificate === undefined || mtls === undefined) return refuse("missing");
        if (certificate === "unverified") return refuse("mtls_unverified");
        return admit(mtls.identify(certificate) ?? "mtls_unknown", peer);
      }
      if (key === "") return refuse("malformed");
      return admit(keys.verify(key, now()), peer);
    },
    close: () => jwt?.close(),
  };
}

/** Loopback hosts: where anonymous serving is allowed without `auth.allowAnonymous`. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why the gateway must not start as configured, or undefined: no tenants (every call
 * anonymous, spending the provider keys) on an address beyond loopback, without
 * `auth.allowAnonymous: true` saying that is meant.
 */
export function anonymousListenProblem(config: SluiceConfig, host: string): string | undefined {
  if (Object.keys(config.tenants).length > 0 || config.auth.allowAnonymous || isLoopback(host)) return undefined;
  return (
    `listening on ${host} with no authentication: anyone who reaches the port would spend the provider keys. ` +
    "Configure tenants with API keys, or set auth.allowAnonymous: true if that is intended"
  );
}
