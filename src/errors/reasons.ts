/**
 * Every `google.rpc.ErrorInfo.reason` Sluice sends (domain "sluice"): the one list, so a
 * caller's `switch` on reasons can be checked against it. The README's error table is
 * tested against this file (reasons.test.ts): add a reason here and it must be documented.
 */
export const reasons = {
  // The caller's request (INVALID_ARGUMENT + BadRequest naming the field; ErrorInfo carries the first field's reason).
  requiredField: "REQUIRED_FIELD",
  invalidField: "INVALID_FIELD",
  /** More messages, content parts, tools, tool calls, stop sequences or metadata than the contract allows. */
  requestLimitExceeded: "REQUEST_LIMIT_EXCEEDED",
  /** A setting the chosen provider does not support (e.g. `top_k` on OpenAI). */
  unsupportedByProvider: "UNSUPPORTED_BY_PROVIDER",
  /** No such model alias (NOT_FOUND). */
  modelNotFound: "MODEL_NOT_FOUND",

  // Upstream failures, one per failure class (failure-table.ts).
  upstreamBadRequest: "UPSTREAM_BAD_REQUEST",
  contextLengthExceeded: "CONTEXT_LENGTH_EXCEEDED",
  upstreamAuth: "UPSTREAM_AUTH",
  upstreamBilling: "UPSTREAM_BILLING",
  upstreamModelNotFound: "UPSTREAM_MODEL_NOT_FOUND",
  upstreamRateLimited: "UPSTREAM_RATE_LIMITED",
  upstreamOverloaded: "UPSTREAM_OVERLOADED",
  upstreamUnavailable: "UPSTREAM_UNAVAILABLE",
  upstreamTimeout: "UPSTREAM_TIMEOUT",
  upstreamConnection: "UPSTREAM_CONNECTION",
  upstreamStreamIncomplete: "UPSTREAM_STREAM_INCOMPLETE",
  upstreamMalformed: "UPSTREAM_MALFORMED",
  upstreamUnexpectedStatus: "UPSTREAM_UNEXPECTED_STATUS",
  upstreamConflict: "UPSTREAM_CONFLICT",

  // The gateway's own resilience decisions (UNAVAILABLE).
  allDeploymentsUnavailable: "ALL_DEPLOYMENTS_UNAVAILABLE",
  allDeploymentsBusy: "ALL_DEPLOYMENTS_BUSY",

  // The server's own load shedding (RESOURCE_EXHAUSTED).
  serverOverloaded: "SERVER_OVERLOADED",

  // A tenant's limits and budgets (RESOURCE_EXHAUSTED + QuotaFailure naming the limit + RetryInfo).
  /** Requests or tokens per minute. */
  rateLimited: "RATE_LIMITED",
  /** Calls in progress at once. */
  concurrencyLimited: "CONCURRENCY_LIMITED",
  /** A daily or monthly budget, in USD or tokens: refused until the period turns. */
  budgetExhausted: "BUDGET_EXHAUSTED",
  /** One call's estimate exceeds a per-minute token limit outright: no wait helps (no RetryInfo). */
  requestTooLarge: "REQUEST_TOO_LARGE",
  /** The shared state (Redis) could not answer and `state.redis.failMode` is `closed` (UNAVAILABLE). */
  stateUnavailable: "STATE_UNAVAILABLE",

  // The response cache and idempotency keys (issue 16).
  /** The same idempotency key with a different request (INVALID_ARGUMENT; HTTP 422 on the compatible routes). */
  idempotencyKeyReused: "IDEMPOTENCY_KEY_REUSED",
  /** A coalesced stream's caller fell too far behind the shared upstream stream (RESOURCE_EXHAUSTED). */
  coalescedStreamLagging: "COALESCED_STREAM_LAGGING",

  // Callers: no valid credentials (UNAUTHENTICATED); a model outside the tenant's list (PERMISSION_DENIED).
  unauthenticated: "UNAUTHENTICATED",
  modelNotAllowed: "MODEL_NOT_ALLOWED",
  /** AdminService called by a tenant without `admin: true`, or anonymously (PERMISSION_DENIED). */
  adminOnly: "ADMIN_ONLY",

  // The call's own end: its caller left or its deadline passed, the server is draining, a bug.
  cancelled: "CANCELLED",
  deadlineExceeded: "DEADLINE_EXCEEDED",
  serverShuttingDown: "SERVER_SHUTTING_DOWN",
  internalError: "INTERNAL_ERROR",
  /** An error no rule above names (its code says what kind). */
  unclassified: "UNCLASSIFIED",
} as const;

/** One of the reasons above. */
export type Reason = (typeof reasons)[keyof typeof reasons];
