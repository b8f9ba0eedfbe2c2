/** Header lookup that works for undici's plain header records and Headers alike. */
export type HeaderGetter = (name: string) => string | undefined;

/**
 * How long the provider asked us to wait, in milliseconds, or undefined when it did not
 * say. `retry-after-ms` (OpenAI, fractional ms) wins over `retry-after` (seconds or an
 * HTTP date). Negative or unparseable values are ignored.
 */
export function parseRetryAfterMs(get: HeaderGetter, now: number = Date.now()): number | undefined {
  const ms = get("retry-after-ms");
  if (ms !== undefined) {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return Math.ceil(value);
  }
  const after = get("retry-after");
  if (after === undefined) return undefined;
  const trimmed = after.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** `x-should-retry: true|false`, or undefined when absent or anything else. */
export function parseShouldRetry(get: HeaderGetter): boolean | undefined {
  const value = get("x-should-retry");
  if (value === "true") return true;
  if (value === "false") return false;
  return undefined;
}

/** A HeaderGetter over undici's `IncomingHttpHeaders` record. */
export function headerGetter(headers: Record<string, string | string[] | undefined>): HeaderGetter {
  return (name) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}
