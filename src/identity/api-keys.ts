import { hash, timingSafeEqual } from "node:crypto";
import type { SluiceConfig } from "../config/schema.js";
import type { Identity } from "./identity.js";
import { createModelAccess } from "./model-access.js";

/** Why a presented key was refused: for the operator's access line, never for the caller. */
export type KeyRefusal = "unknown" | "expired" | "disabled";

interface KeyEntry {
  readonly digest: Buffer;
  readonly identity: Identity;
  readonly expiresAt: number | undefined;
  readonly disabled: boolean;
}

/** The configured tenants' API keys, by the SHA-256 of the key. */
export interface ApiKeys {
  readonly size: number;
  /** The identity a key belongs to, or why it is refused. */
  verify(key: string, now: number): Identity | KeyRefusal;
}

/**
 * Keys are stored only as SHA-256 hashes (config `tenants.*.apiKeys[].sha256`). A presented
 * key is hashed, the entry found by its hash, and the two digests compared with
 * `timingSafeEqual` — the lookup itself reveals nothing useful: finding a key by its hash's
 * timing would need a SHA-256 preimage.
 */
export function createApiKeys(tenants: SluiceConfig["tenants"]): ApiKeys {
  const byHash = new Map<string, KeyEntry>();
  for (const [tenant, config] of Object.entries(tenants)) {
    const models = createModelAccess(config.models);
    for (const key of config.apiKeys) {
      const keyId = key.id ?? `sha256:${key.sha256.slice(0, 8)}`;
      byHash.set(key.sha256, {
        digest: Buffer.from(key.sha256, "hex"),
        identity: Object.freeze({ tenant, keyId, method: "api_key", models }),
        expiresAt: key.expiresAt === undefined ? undefined : Date.parse(key.expiresAt),
        disabled: key.disabled,
      });
    }
  }
  return {
    size: byHash.size,
    verify(key, now) {
      // One-shot hash: no Hash object per call (~0.5 µs less than createHash().update().digest()).
      const digest = hash("sha256", key, "buffer");
      const entry = byHash.get(digest.toString("hex"));
      if (entry === undefined || !timingSafeEqual(digest, entry.digest)) return "unknown";
      if (entry.disabled) return "disabled";
      if (entry.expiresAt !== undefined && now >= entry.expiresAt) return "expired";
      return entry.identity;
    },
  };
}

/** The `sha256` value for a key: lowercase hex SHA-256 of the whole key string. */
export function apiKeyHash(key: string): string {
  return hash("sha256", key, "hex");
}
