import type { ConnectError } from "@connectrpc/connect";

/* Header checks every fast lane makes before taking a call (it declines, untouched, otherwise). */

/** Whether a Headers object holds anything (without copying it). */
export function hasEntries(headers: Headers): boolean {
  for (const _ of headers.keys()) return true;
  return false;
}

/** A protocol's timeout header parser, as connect exports one per protocol. */
type TimeoutParser = (value: string | null, maxTimeoutMs: number) => { timeoutMs?: number; error?: ConnectError };

/**
 * A call's timeout from its header (`connect-timeout-ms`, `grpc-timeout`) with the
 * protocol's own connect parser: undefined when absent, null when malformed — the lane
 * then declines, and connect-node answers with the protocol's error. A timeout above
 * `maxMs` (the server's deadline cap, timeout-clamp.ts) is `maxMs`: never shorter, and
 * never more than a timer holds.
 */
export function timeoutFromHeader(
  value: string | string[] | undefined,
  parse: TimeoutParser,
  maxMs: number,
): number | undefined | null {
  if (value === undefined) return undefined;
  const timeout = parse(value as string, Number.MAX_SAFE_INTEGER);
  if (timeout.error !== undefined) return null;
  const ms = timeout.timeoutMs;
  return ms !== undefined && ms > maxMs ? maxMs : ms;
}
