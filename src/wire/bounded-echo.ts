import { cutText } from "../errors/bounded-text.js";

/** Longest piece of the caller's input quoted back in a parse error, in UTF-16 units. */
export const maxEchoLength = 64;

/**
 * protobuf-es quotes the offending input whole in some JSON errors — `key "…" is unknown`,
 * `duplicate map key "…"`, `duplicate object key "…"` — so a 2 MB key came back as a 2 MB
 * error. This cuts the quoted part to `maxEchoLength` code units and "…", and leaves every
 * other word as protobuf-es wrote it. In those messages the input is what lies between the
 * first and the last `"` (type and field names never contain one); V8's JSON syntax errors
 * quote more than once but are short already, so they pass unchanged.
 * Returns `err` itself when nothing needed cutting — the rewritten error drops `cause`, which
 * would keep the long text alive (and in logs).
 */
export function boundEchoedInput(err: unknown): unknown {
  if (!(err instanceof Error) || err.message.length <= maxEchoLength + 2) return err;
  const message = err.message;
  const first = message.indexOf('"');
  const last = message.lastIndexOf('"');
  if (first < 0 || last - first - 1 <= maxEchoLength) return err;
  const echoed = cutText(message.slice(first + 1, last), maxEchoLength + 1);
  const bounded = new Error(`${message.slice(0, first + 1)}${echoed}${message.slice(last)}`);
  bounded.name = err.name;
  return bounded;
}
