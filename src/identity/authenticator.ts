import type { SluiceConfig } from "../config/schema.js";
import { createApiKeys, type KeyRefusal } from "./api-keys.js";
import { anonymous, type Identity } from "./identity.js";
import { createNetworkAllowList, type NetworkAllowList } from "./network-allow-list.js";
import type { Peer } from "./peer.js";
import { presentedKey } from "./presented-key.js";

/**
 * Why a call was refused, for the operator's access line (the caller always gets the
 * same message): no credentials, a malformed one, an unknown / expired / disabled key, or
 * a credential used from an address its tenant (or `auth.allowFrom`) does not allow.
 */
export type AuthRefusal = "missing" | "malformed" | KeyRefusal | "address";

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
  authenticate(header: Headers, peer: Peer | undefined): AuthOutcome;
}

export interface AuthenticatorDeps {
  /** Milliseconds since the epoch (key expiry); tests pass a fixed clock. */
  readonly now?: () => number;
}

/**
 * API keys per tenant (`tenants.*.apiKeys`), with network allow-lists: global
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

  function refuse(refusal: AuthRefusal, tenant?: string): AuthOutcome {
    return { identity: undefined, refusal, tenant };
  }

  return {
    required,
    enabled: required || global !== undefined,
    authenticate(header, peer) {
      if (global !== undefined && !global.allows((peer ?? noPeer).remoteAddress())) return refuse("address");
      if (!required) return { identity: anonymous, refusal: undefined };
      const key = presentedKey(header);
      if (key === undefined) return refuse("missing");
      if (key === "") return refuse("malformed");
      const verified = keys.verify(key, now());
      if (typeof verified === "string") return refuse(verified);
      const allowList = perTenant.get(verified.tenant);
      if (allowList !== undefined && !allowList.allows((peer ?? noPeer).remoteAddress())) {
        return refuse("address", verified.tenant);
      }
      return { identity: verified, refusal: undefined };
    },
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
