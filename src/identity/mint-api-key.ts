import { randomBytes } from "node:crypto";
import { apiKeyHash } from "./api-keys.js";

/** Every key Sluice mints starts with this: secret scanners (and people) recognise a leaked one. */
export const apiKeyPrefix = "sk-sluice-";

export interface MintedKey {
  /** The key itself: shown once, never stored by Sluice. */
  readonly key: string;
  /** What the configuration stores: `{ sha256, id? }`. */
  readonly sha256: string;
  /** The YAML line for `tenants.<tenant>.apiKeys`. */
  readonly configLine: string;
}

/** A new API key: 32 random bytes (crypto.randomBytes), base64url, after the prefix. */
export function mintApiKey(id?: string): MintedKey {
  const key = apiKeyPrefix + randomBytes(32).toString("base64url");
  const sha256 = apiKeyHash(key);
  return { key, sha256, configLine: `- { sha256: ${sha256}${id === undefined ? "" : `, id: ${id}`} }` };
}
