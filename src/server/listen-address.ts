import { isIPv6 } from "node:net";

/**
 * Splits a validated `host:port` (config `listen`, `--listen`): `[::1]:8080` gives host
 * `::1`. Throws on anything else, so a bad `--listen` fails at startup.
 */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65_535)
    throw new Error(`invalid listen address "${listen}": expected host:port, e.g. 127.0.0.1:8080 or [::1]:8080`);
  return { host: match[1] ?? match[2]!, port };
}

/** `http://127.0.0.1:8080`, `http://[::1]:8080`. */
export function formatUrl(protocol: "http" | "https", host: string, port: number): string {
  return `${protocol}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}
