import { errors, jwtVerify } from "jose";
import type { JwtConfig, SluiceConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";
import type { Identity, ModelAccess } from "./identity.js";
import { createJwtKeySet, type JwtKeySet } from "./jwt-key-set.js";
import { createModelAccess } from "./model-access.js";

/**
 * Why a JWT was refused, for the operator's access line (the caller always gets the same
 * message): not a valid signed token of an allowed algorithm (`alg: none`, HS256, a bad
 * signature, garbage), expired, not yet valid, the wrong issuer or audience (or no `exp`),
 * a `kid` the JWKS does not hold, the JWKS could not be fetched, or its tenant claim names
 * no configured tenant.
 */
export type JwtRefusal =
  | "jwt_invalid"
  | "jwt_expired"
  | "jwt_not_yet_valid"
  | "jwt_claims"
  | "jwt_unknown_key"
  | "jwt_keys_unavailable"
  | "jwt_tenant";

export type JwtResult = Identity | JwtRefusal;

/** Verifies bearer JWTs (`auth.jwt`). */
export interface JwtVerifier {
  /**
   * The identity a token proves, or why it is refused. A token verified before (and not
   * yet expired) is answered at once, without a promise: no signature check per call.
   */
  verify(token: string): JwtResult | Promise<JwtResult>;
  close(): void;
}

export interface JwtVerifierDeps {
  /** Milliseconds since the epoch (exp, nbf and the cache); tests pass a fixed clock. */
  readonly now?: () => number;
  readonly logger?: Logger;
  /** The keys; default: from `jwksFile` or `jwksUrl`. Tests may pass their own. */
  readonly keySet?: (onChange: () => void) => JwtKeySet;
}

interface Verified {
  readonly identity: Identity;
  /** Until when (ms) the verification stands: the token's `exp` plus the clock tolerance. */
  readonly until: number;
}

/** Longest claim value shown as a key id: enough to recognise a subject, bounded on the access line. */
const maxKeyIdLength = 128;

/**
 * `jwtVerify` with the algorithms, issuer and audience from configuration only — the
 * token's header picks a key (`kid`) and states its `alg`, which must be one configured;
 * it never chooses how it is checked. `exp` is required.
 *
 * Verified tokens are remembered by their full text in a Map capped at `cacheSize`
 * (oldest first out), each until its `exp`: the RSA/EC check runs once per token, not per
 * call. Refusals are not remembered (a flood of bad tokens must not push good ones out).
 * Concurrent first calls with one token share one verification. When a JWKS file's keys
 * change, everything remembered is forgotten, so a key taken out stops working at once.
 */
export function createJwtVerifier(config: JwtConfig, tenants: SluiceConfig["tenants"], deps: JwtVerifierDeps = {}): JwtVerifier {
  const now = deps.now ?? Date.now;
  const models = new Map<string, ModelAccess>();
  for (const [tenant, { models: patterns }] of Object.entries(tenants)) models.set(tenant, createModelAccess(patterns));
  const verified = new Map<string, Verified>();
  const pending = new Map<string, Promise<JwtResult>>();
  const forget = (): void => verified.clear();
  const keySet = deps.keySet?.(forget) ?? createJwtKeySet(config, { onChange: forget, logger: deps.logger });
  const options = {
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockToleranceSec,
    requiredClaims: ["exp"],
  };
  const toleranceMs = config.clockToleranceSec * 1_000;

  function remember(token: string, entry: Verified): void {
    if (config.cacheSize === 0) return;
    if (verified.size >= config.cacheSize) verified.delete(verified.keys().next().value!);
    verified.set(token, entry);
  }

  async function check(token: string): Promise<JwtResult> {
    let payload: Awaited<ReturnType<typeof jwtVerify>>["payload"];
    try {
      ({ payload } = await jwtVerify(token, keySet.getKey, { ...options, currentDate: new Date(now()) }));
    } catch (err) {
      return refusalOf(err);
    }
    const tenant = payload[config.tenantClaim];
    const access = typeof tenant === "string" ? models.get(tenant) : undefined;
    if (access === undefined) return "jwt_tenant";
    const subject = payload[config.keyIdClaim];
    const keyId = typeof subject === "string" && subject !== "" ? subject.slice(0, maxKeyIdLength) : "jwt";
    const identity: Identity = Object.freeze({ tenant: tenant as string, keyId, method: "jwt", models: access });
    remember(token, { identity, until: payload.exp! * 1_000 + toleranceMs });
    return identity;
  }

  return {
    verify(token) {
      const hit = verified.get(token);
      if (hit !== undefined) {
        if (now() < hit.until) return hit.identity;
        verified.delete(token);
      }
      let result = pending.get(token);
      if (result === undefined) {
        result = check(token).finally(() => pending.delete(token));
        pending.set(token, result);
      }
      return result;
    },
    close: () => keySet.close(),
  };
}

/** What a jose error means for the access line. Never its message or payload: they carry the token's claims. */
function refusalOf(err: unknown): JwtRefusal {
  if (err instanceof errors.JWTExpired) return "jwt_expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    return err.claim === "nbf" || err.claim === "iat" ? "jwt_not_yet_valid" : "jwt_claims";
  }
  if (err instanceof errors.JWKSNoMatchingKey) return "jwt_unknown_key";
  // A JWKS URL that timed out, answered other than 200 with JSON, or held no key set; a
  // network error (fetch's TypeError) too.
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return "jwt_keys_unavailable";
  if (!(err instanceof errors.JOSEError) || err.code === "ERR_JOSE_GENERIC") return "jwt_keys_unavailable";
  return "jwt_invalid";
}
