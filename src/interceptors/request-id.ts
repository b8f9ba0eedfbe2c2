import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { errorDomain } from "../errors/gateway-error.js";
import { reasons, type Reason } from "../errors/reasons.js";

/** Longest `x-request-id` taken from a caller; a longer or odd one is replaced by a generated id. */
export const maxRequestIdLength = 128;

/** Visible ASCII only: the id is logged and echoed in headers, so no spaces, control bytes or non-ASCII. */
const requestIdPattern = /^[\x21-\x7e]+$/;

/** The caller's `x-request-id` when it is a sane token (1–128 visible ASCII characters), else a new UUID. */
export function requestIdOf(header: Headers): string {
  const given = header.get("x-request-id");
  if (given !== null && given.length <= maxRequestIdLength && requestIdPattern.test(given)) return given;
  return randomUUID();
}

/** The ErrorInfo reason of an error Sluice raised without one, by its code. */
function reasonByCode(code: Code): Reason {
  switch (code) {
    case Code.Canceled:
      return reasons.cancelled;
    case Code.DeadlineExceeded:
      return reasons.deadlineExceeded;
    case Code.Internal:
      return reasons.internalError;
    default:
      return reasons.unclassified;
  }
}

type Detail = ConnectError["details"][number];

/**
 * The error as the caller gets it: its ErrorInfo names the request id (metadata
 * `request_id`; an ErrorInfo with a reason by code is added when it had none), and
 * `x-request-id` rides with its headers / trailers. A copy: the error may be shared (a
 * server-wide shutdown reason, an abort reason several calls saw).
 */
export function withRequestId(err: ConnectError, requestId: string): ConnectError {
  let found = false;
  const details: Detail[] = err.details.map((detail) => {
    if (!("desc" in detail) || detail.desc !== ErrorInfoSchema) return detail;
    found = true;
    const value = detail.value as { reason?: string; domain?: string; metadata?: Record<string, string> };
    return { desc: ErrorInfoSchema, value: { ...value, metadata: { ...value.metadata, request_id: requestId } } };
  });
  if (!found) {
    details.unshift({
      desc: ErrorInfoSchema,
      value: { reason: reasonByCode(err.code), domain: errorDomain, metadata: { request_id: requestId } },
    });
  }
  const metadata = new Headers(err.metadata);
  metadata.set("x-request-id", requestId);
  return new ConnectError(err.rawMessage, err.code, metadata, details as never, err.cause);
}
