/** Longest JWT read from a request: well above an RS512 token with a few claims, far below the header limit. */
export const maxJwtLength = 8_192;

/** `Bearer` and three base64url segments (the last empty for `alg: none`, which is then refused as a JWT). */
const bearerJwtPattern = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*) *$/i;

/**
 * The JWT a request presents as `authorization: Bearer TOKEN`, or undefined when the
 * bearer is not shaped like one (it is then read as an API key: Sluice's keys have no
 * dots). Read apart from API keys because a signed JWT is longer than any API key is
 * allowed to be.
 */
export function bearerJwt(header: Headers): string | undefined {
  const authorization = header.get("authorization");
  if (authorization === null || authorization.length > maxJwtLength + 16) return undefined;
  return bearerJwtPattern.exec(authorization)?.[1];
}
