import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { UpstreamError } from "../errors/gateway-error.js";

/** Lower-case code names, as the Connect protocol spells them ("not_found"), by code. */
export const codeNames: Readonly<Record<number, string>> = (() => {
  const names: Record<number, string> = {};
  for (const [name, value] of Object.entries(Code)) {
    if (typeof value === "number") names[value] = name.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? "_" : "") + c.toLowerCase());
  }
  return names;
})();

/** The Connect code name of a call's outcome: "ok", or the error's ("not_found"). */
export function codeName(error: ConnectError | undefined): string {
  return error === undefined ? "ok" : (codeNames[error.code] ?? "unknown");
}

/**
 * A bounded, machine-readable name for a failure (`error.type` on spans, the `error_type`
 * label): the ErrorInfo reason Sluice gave it ("UPSTREAM_RATE_LIMITED"), else its code
 * name ("deadline_exceeded"), else the error's class ("TypeError") — never its message.
 */
export function errorType(error: unknown): string {
  if (error instanceof UpstreamError) return error.failure.reason;
  if (error instanceof ConnectError) {
    for (const detail of error.details) {
      if ("desc" in detail && detail.desc === ErrorInfoSchema) {
        const reason = (detail.value as { reason?: string }).reason;
        if (reason !== undefined && reason !== "") return reason;
      }
    }
    return codeNames[error.code] ?? "unknown";
  }
  return error instanceof Error ? error.name : "_OTHER";
}
