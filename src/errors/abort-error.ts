import { Code, ConnectError } from "@connectrpc/connect";

/** The error for an aborted call: the caller's own reason when it is a ConnectError. */
export function abortError(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, reason);
}
