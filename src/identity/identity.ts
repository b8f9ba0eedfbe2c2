import { createContextKey } from "@connectrpc/connect";

/** How a caller proved who it is. */
export type AuthMethod = "api_key" | "jwt" | "mtls" | "signature" | "anonymous";

/** Who is calling: the tenant and the credential it used (its id, never the credential). */
export interface Identity {
  /** A configured tenant name; "" when anonymous. */
  readonly tenant: string;
  /** The credential's id ("ci", "sha256:9f86d081"; a JWT's `auth.jwt.keyIdClaim`); "" when anonymous. */
  readonly keyId: string;
  readonly method: AuthMethod;
  /** Which aliases it may call. */
  readonly models: ModelAccess;
}

/** Whether an alias may be called (a tenant's `models` globs; anonymous callers: every alias). */
export interface ModelAccess {
  allows(alias: string): boolean;
}

export const everyModel: ModelAccess = Object.freeze({ allows: () => true });

/** The identity of a caller when no tenants are configured. */
export const anonymous: Identity = Object.freeze({ tenant: "", keyId: "", method: "anonymous", models: everyModel });

/** Where the authentication step leaves the caller's identity for later steps (HandlerContext.values). */
export const identityKey = createContextKey<Identity>(anonymous, { description: "sluice caller identity" });
