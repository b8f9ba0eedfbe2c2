import type { Registry } from "prom-client";
import { buckets } from "./metrics-buckets.js";
import { HistogramFamily, ValueFamily } from "./metrics-series.js";

/**
 * Every metric the call path records, in one place (the list in docs/metrics.md). Names
 * follow Prometheus conventions (base units, `_total` on counters) and, where one exists,
 * the OpenTelemetry GenAI convention's name as its Prometheus exporter spells it
 * (`gen_ai.server.request.duration` → `gen_ai_server_request_duration_seconds`). Labels
 * are bounded: configured aliases, providers and deployments, code names, protocols; the
 * provider's reported model and error types are capped per deployment (metrics-capped.ts).
 */
export function createCallFamilies(registry: Registry) {
  const call = ["alias", "provider", "deployment"] as const;
  return {
    rpcInFlight: new ValueFamily(
      "sluice_rpc_in_flight",
      "RPCs in progress (a stream counts until its last message), by RPC and protocol.",
      "gauge",
      ["rpc", "protocol"],
    ).register(registry),
    rpcRequests: new ValueFamily(
      "sluice_rpc_requests_total",
      "RPCs ended, by RPC, protocol and status code (Connect code names; ok on success).",
      "counter",
      ["rpc", "protocol", "code"],
    ).register(registry),
    requestDuration: new HistogramFamily(
      "gen_ai_server_request_duration_seconds",
      "Chat calls from arrival to their last byte (a stream: its whole life), by alias, the deployment that answered (empty when none did), code and stream.",
      [...call, "code", "stream"],
      buckets.requestDuration,
    ).register(registry),
    timeToFirstToken: new HistogramFamily(
      "gen_ai_server_time_to_first_token_seconds",
      "Streams: from the call's arrival to its first chunk sent to the caller, by alias and answering deployment.",
      call,
      buckets.timeToFirstToken,
    ).register(registry),
    timePerOutputToken: new HistogramFamily(
      "gen_ai_server_time_per_output_token_seconds",
      "Successful streams: time per output token after the first ((duration - time to first token) / (output tokens - 1)).",
      call,
      buckets.timePerOutputToken,
    ).register(registry),
    tokenUsage: new HistogramFamily(
      "gen_ai_client_token_usage",
      "Tokens per answered call as the provider reported them, by alias, deployment and token_type (input, output).",
      [...call, "token_type"],
      buckets.tokenUsage,
    ).register(registry),
    gatewayAdded: new HistogramFamily(
      "sluice_gateway_added_duration_seconds",
      "Chat calls: time not spent waiting on an upstream attempt (total minus the time at least one attempt was in flight): Sluice's own work, backoff and Retry-After waits.",
      ["alias", "stream"],
      buckets.gatewayAdded,
    ).register(registry),
    cost: new ValueFamily(
      "sluice_cost_usd_total",
      "Cost of answered calls in USD, from the deployment's configured price and the reported token usage.",
      "counter",
      call,
    ).register(registry),
    answeringModels: new ValueFamily(
      "sluice_upstream_model_answers_total",
      'Answered calls by the model the provider reported (response_model; at most a few values per deployment, the rest "other"): shows a silent upstream model change.',
      "counter",
      ["alias", "deployment", "response_model"],
    ).register(registry),
    attempts: new ValueFamily(
      "sluice_upstream_attempts_total",
      "Upstream attempts ended, by provider, deployment, outcome (ok, error, cancelled, superseded) and error_type (the ErrorInfo reason or code; empty unless outcome is error).",
      "counter",
      ["provider", "deployment", "outcome", "error_type"],
    ).register(registry),
    attemptDuration: new HistogramFamily(
      "gen_ai_client_operation_duration_seconds",
      "Upstream attempts from sending to their end (a stream attempt: its whole stream), by provider, deployment and outcome.",
      ["provider", "deployment", "outcome"],
      buckets.requestDuration,
    ).register(registry),
    skips: new ValueFamily(
      "sluice_deployment_skips_total",
      "Candidates skipped without an attempt, by alias, deployment and reason (breaker_open, in_flight_limit).",
      "counter",
      ["alias", "deployment", "reason"],
    ).register(registry),
    retryBudgetExhausted: new ValueFamily(
      "sluice_retry_budget_exhausted_total",
      "Retries not made because the process-wide retry budget was spent (the call failed over instead), by alias and deployment.",
      "counter",
      ["alias", "deployment"],
    ).register(registry),
    fallbacks: new ValueFamily(
      "sluice_fallbacks_total",
      "Calls that moved on to a fallback alias, by the alias asked for.",
      "counter",
      ["alias"],
    ).register(registry),
    tenantRequests: new ValueFamily(
      "sluice_tenant_requests_total",
      "RPCs ended by calling tenant (configured tenants only; anonymous calls are not counted here) and status code.",
      "counter",
      ["tenant", "code"],
    ).register(registry),
    tenantTokens: new ValueFamily(
      "sluice_tenant_tokens_total",
      "Tokens the provider reported for a tenant's answered calls, by tenant and token_type (input, output).",
      "counter",
      ["tenant", "token_type"],
    ).register(registry),
    tenantCost: new ValueFamily(
      "sluice_tenant_cost_usd_total",
      "Cost of a tenant's answered calls in USD, from the deployments' configured prices.",
      "counter",
      ["tenant"],
    ).register(registry),
    degraded: new ValueFamily(
      "sluice_degraded_answers_total",
      "Calls answered with the alias's configured degraded answer (every candidate failed), by alias.",
      "counter",
      ["alias"],
    ).register(registry),
  };
}

export type CallFamilies = ReturnType<typeof createCallFamilies>;
