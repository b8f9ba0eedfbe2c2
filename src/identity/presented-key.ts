/** Longest API key read from a request; a longer value is malformed (and never hashed). */
export const maxKeyLength = 512;

/** Visible ASCII, no spaces: what every key Sluice mints (and any sane key) is made of. */
const keyText = /^[\x21-\x7e]+$/;

/**
 * The API key a request presents: `authorization: Bearer KEY`, else `x-api-key: KEY`.
 * Undefined when neither header is there; "" when one is there but is not a well-formed
 * key (another scheme, an empty or oversized value, spaces or control bytes) — refused
 * exactly like a wrong key.
 */
export function presentedKey(header: Headers): string | undefined {
  const authorization = header.get("authorization");
  if (authorization !== null) {
    const match = /^bearer +(\S+) *$/i.exec(authorization);
    return match !== null && wellFormed(match[1]!) ? match[1]! : "";
  }
  const apiKey = header.get("x-api-key");
  if (apiKey === null) return undefined;
  return wellFormed(apiKey) ? apiKey : "";
}

function wellFormed(key: string): boolean {
  return key.length <= maxKeyLength && keyText.test(key);
}
