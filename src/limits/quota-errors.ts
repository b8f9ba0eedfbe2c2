import { Code, ConnectError } from "@connectrpc/connect";
import { QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { errorInfo, type OutgoingDetail, retryInfo } from "../errors/gateway-error.js";
import { type Reason, reasons } from "../errors/reasons.js";

/** Which limit refused a call: the QuotaFailure's description, the metric's `limit` label, the ErrorInfo's `limit`. */
export type LimitName =
  | "requests_per_minute"
  | "tokens_per_minute"
  | "concurrent_requests"
  | "usd_per_day"
  | "usd_per_month"
  | "tokens_per_day"
  | "tokens_per_month";

export const limitNames: readonly LimitName[] = [
  "requests_per_minute",
  "tokens_per_minute",
  "concurrent_requests",
  "usd_per_day",
  "usd_per_month",
  "tokens_per_day",
  "tokens_per_month",
];

/** Where a limit is configured: the QuotaFailure's subject (`tenant:team-a`, `key:team-a/ci`, `model:team-a/fast`). */
export interface LimitScope {
  readonly subject: string;
  /** The config path the limit comes from, for the message: `tenants.team-a.limits`. */
  readonly path: string;
}

const reasonOf: Readonly<Record<LimitName, Reason>> = {
  requests_per_minute: reasons.rateLimited,
  tokens_per_minute: reasons.rateLimited,
  concurrent_requests: reasons.concurrencyLimited,
  usd_per_day: reasons.budgetExhausted,
  usd_per_month: reasons.budgetExhausted,
  tokens_per_day: reasons.budgetExhausted,
  tokens_per_month: reasons.budgetExhausted,
};

const configName: Readonly<Record<LimitName, string>> = {
  requests_per_minute: "requestsPerMinute",
  tokens_per_minute: "tokensPerMinute",
  concurrent_requests: "concurrentRequests",
  usd_per_day: "usdPerDay",
  usd_per_month: "usdPerMonth",
  tokens_per_day: "tokensPerDay",
  tokens_per_month: "tokensPerMonth",
};

/**
 * A call a limit refused: RESOURCE_EXHAUSTED with ErrorInfo (reason by kind; metadata: the
 * limit, its value and subject), a google.rpc.QuotaFailure naming the subject and the limit,
 * and RetryInfo when waiting helps. `retry-after` (whole seconds, rounded up) rides in the
 * error's metadata: connect-node sends it as an HTTP header on Connect and gRPC-Web answers.
 */
export function limitExceeded(limit: LimitName, value: number, scope: LimitScope, retryAfterMs: number): ConnectError {
  const name = configName[limit];
  const wait = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const message = `${scope.path}.${name} (${value}) reached for ${scope.subject}: retry in ${wait} s`;
  return quotaError(reasonOf[limit], message, limit, value, scope, retryAfterMs);
}

/** One call's own estimate exceeds a per-minute token limit: no wait would admit it, so no RetryInfo. */
export function requestTooLarge(value: number, estimate: number, scope: LimitScope): ConnectError {
  const message =
    `this call needs ~${estimate} tokens (prompt estimate + max output tokens), more than ${scope.path}.tokensPerMinute ` +
    `(${value}) allows at once: send a shorter prompt or set a lower max_output_tokens`;
  return quotaError(reasons.requestTooLarge, message, "tokens_per_minute", value, scope, undefined);
}

function quotaError(
  reason: Reason,
  message: string,
  limit: LimitName,
  value: number,
  scope: LimitScope,
  retryAfterMs: number | undefined,
): ConnectError {
  const details: OutgoingDetail[] = [
    errorInfo(reason, { limit, value: String(value), subject: scope.subject }),
    {
      desc: QuotaFailureSchema,
      value: { violations: [{ subject: scope.subject, description: `${configName[limit]}: ${value}` }] },
    },
  ];
  if (retryAfterMs !== undefined) details.push(retryInfo(retryAfterMs));
  const metadata =
    retryAfterMs === undefined ? undefined : { "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) };
  return new ConnectError(message, Code.ResourceExhausted, metadata, details);
}

/** The shared state did not answer and the fail mode is closed. */
export function stateUnavailable(): ConnectError {
  return new ConnectError(
    "limits cannot be checked: the shared state (Redis) is unreachable; retry shortly",
    Code.Unavailable,
    { "retry-after": "1" },
    [errorInfo(reasons.stateUnavailable), retryInfo(1_000)],
  );
}
