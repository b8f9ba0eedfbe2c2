import { Counter, Gauge, type Registry } from "prom-client";

/** What the limits and state metrics read and count (structural: telemetry does not know the state layer). */
export interface LimitsMetricsDeps {
  /** The configured tenants: only these become `tenant` values (others count as "other"). */
  readonly tenants: readonly string[];
  /** Where limits live and whether it answers now (read at scrape time). */
  readonly stateHealth?: (() => { readonly backend: string; readonly status: string }) | undefined;
}

/** `sluice_cache_requests_total{alias,result}`: how the response cache served calls. */
export interface CacheMetrics {
  result(alias: string, result: string): void;
}

export function registerCacheMetrics(registry: Registry): CacheMetrics {
  const requests = new Counter({
    name: "sluice_cache_requests_total",
    help: "Calls that went through the response cache or carried an idempotency key, by alias and result (hit, miss, coalesced, bypass).",
    labelNames: ["alias", "result"],
    registers: [registry],
  });
  return {
    result(alias, result) {
      requests.inc({ alias, result });
    },
  };
}

export interface LimitsMetrics {
  /** A call refused by a limit (`requests_per_minute`, `usd_per_day`, `context_window`…). */
  refused(tenant: string, limit: string): void;
  /** A state operation that failed (`admit`, `settle`, `renew`, `usage`); `admitted`: the fail mode let the call through. */
  stateFailed(operation: string, admitted: boolean): void;
  /** Tenants a configuration reload added: they become `tenant` values too. */
  addTenants?(tenants: readonly string[]): void;
}

/**
 * `sluice_limit_rejections_total{tenant,limit}`, `sluice_state_errors_total{operation,outcome}`
 * and `sluice_state_up{backend}` (1 while the state backend answers): limits are visible
 * in metrics, and a Redis outage too. Labels are bounded: configured tenants, fixed limit
 * and operation names.
 */
export function registerLimitsMetrics(registry: Registry, deps: LimitsMetricsDeps): LimitsMetrics {
  const tenants = new Set(deps.tenants);
  const rejections = new Counter({
    name: "sluice_limit_rejections_total",
    help: "Calls refused by a tenant's limit or budget, or by a model's context window, by tenant and limit.",
    labelNames: ["tenant", "limit"],
    registers: [registry],
  });
  const stateErrors = new Counter({
    name: "sluice_state_errors_total",
    help: 'State operations that failed (Redis unreachable or slow); outcome "admitted" (fail open) or "refused" (fail closed).',
    labelNames: ["operation", "outcome"],
    registers: [registry],
  });
  const health = deps.stateHealth;
  if (health !== undefined) {
    new Gauge({
      name: "sluice_state_up",
      help: "1 while the state backend (memory, or Redis shared by replicas) answers; 0 while it does not (limits follow state.redis.failMode).",
      labelNames: ["backend"],
      registers: [registry],
      collect() {
        this.reset();
        const { backend, status } = health();
        this.set({ backend }, status === "ok" ? 1 : 0);
      },
    });
  }
  return {
    refused(tenant, limit) {
      rejections.inc({ tenant: tenants.has(tenant) ? tenant : tenant === "" ? "" : "other", limit });
    },
    stateFailed(operation, admitted) {
      stateErrors.inc({ operation, outcome: admitted ? "admitted" : "refused" });
    },
    addTenants(added) {
      for (const tenant of added) tenants.add(tenant);
    },
  };
}
