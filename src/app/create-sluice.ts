import type { SluiceConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";
import type { Provider } from "../providers/provider.js";
import { createProviders } from "../providers/create-providers.js";
import { createModelCatalog } from "../routing/model-catalog.js";
import { createCallPlanner } from "../routing/call-plan.js";
import { createCallRunner } from "../resilience/call-runner.js";
import { createBreakerRegistry, type BreakerRegistry } from "../resilience/breaker-registry.js";
import { createRetryBudget } from "../resilience/retry-budget.js";
import { createInFlightLimiter, type InFlightLimiter } from "../resilience/in-flight-limiter.js";
import { createLatencyQuantiles } from "../resilience/latency-quantiles.js";
import { createChatService } from "../api/chat-service.js";
import { createModelService } from "../api/model-service.js";
import { createAdminService } from "../api/admin-service.js";
import { createInterceptors } from "../interceptors/index.js";
import { createAuthenticator } from "../identity/authenticator.js";
import { createCallTelemetry } from "../telemetry/call-telemetry-hub.js";
import { createMetrics, type Metrics } from "../telemetry/metrics.js";
import { createTracing } from "../telemetry/tracing.js";
import type { RouteTable } from "../server/route-table.js";
import { createRouteTable } from "./route-table.js";
import { createStateStore } from "../state/create-state.js";
import type { StateStore } from "../state/state-store.js";
import { createAdmission } from "../limits/admission.js";
import { createTokenEstimator } from "../limits/token-estimator.js";

export interface SluiceDeps {
  readonly logger: Logger;
  /** Where the standard OTEL_* variables are read (process.env in production). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The gateway's services, independent of how they are served (server, tests, in-process transport). */
export interface Sluice {
  /** The RPCs and the interceptor chain: what the server (every lane) and in-process transports serve. */
  readonly routes: RouteTable;
  /** Breaker states and in-flight counts, for GET /healthz. */
  healthDetails(): Readonly<Record<string, unknown>>;
  /** Every configured provider, by configured name. */
  readonly providers: ReadonlyMap<string, Provider>;
  /** One circuit breaker per deployment (states for health and metrics). */
  readonly breakers: BreakerRegistry;
  /** In-flight attempts on deployments with a `maxInFlight` (health and metrics). */
  readonly limiter: InFlightLimiter;
  /** Prometheus metrics (served at `telemetry.metrics.path`). */
  readonly metrics: Metrics;
  /** Limits, budgets and the usage ledger: this process, or Redis shared by replicas (`state`). */
  readonly state: StateStore;
  /** Closes provider pools and breaker timers; exports the spans still buffered. */
  close(): Promise<void>;
}

/** Builds providers, the model catalog and the services from a validated configuration. */
export function createSluice(config: SluiceConfig, deps: SluiceDeps): Sluice {
  const providers = createProviders(config, { logger: deps.logger });
  const state = createStateStore(config.state, { logger: deps.logger });
  const catalog = createModelCatalog(config, providers);
  // Logged once per transition, never per call: an open breaker skips its deployment silently.
  const breakers = createBreakerRegistry(config.resilience.breaker, {
    onStateChange: (deployment, state) => {
      if (state === "open") deps.logger.warn({ deployment, state }, "circuit breaker opened: deployment skipped");
      else deps.logger.info({ deployment, state }, `circuit breaker ${state}`);
    },
  });
  const retryBudget = createRetryBudget(config.resilience.retryBudget);
  const planner = createCallPlanner(catalog);
  const limiter = createInFlightLimiter();
  const tracing = createTracing({ config: config.telemetry.tracing, env: deps.env ?? {}, logger: deps.logger });
  const metrics = createMetrics({
    aliases: catalog.routes.map((route) => route.alias),
    tenants: Object.keys(config.tenants),
    deployments: [...new Set(catalog.routes.flatMap((route) => route.deployments.map((deployment) => deployment.key)))],
    breakerStates: () => breakers.states(),
    inFlight: () => limiter.counts(),
    retryBudget: () => retryBudget.stats,
    stateHealth: () => state.health(),
  });
  const telemetry = createCallTelemetry({ tracing, metrics });
  // With Redis, signed-request nonces are shared so a replay to another replica is caught too.
  const authenticator = createAuthenticator(config, {
    logger: deps.logger,
    nonces: state.backend === "redis" ? state : undefined,
  });
  const interceptors = createInterceptors({ logger: deps.logger, telemetry, authenticator });
  const runner = createCallRunner({
    breakers,
    retryBudget,
    planner,
    limiter,
    latencies: createLatencyQuantiles(),
    telemetry,
  });
  const admission = createAdmission({
    config,
    state,
    estimator: createTokenEstimator(),
    logger: deps.logger,
    observer: metrics.limits,
  });
  const chat = createChatService({ catalog, planner, runner, admission });
  const models = createModelService(catalog);
  const admin = createAdminService({ state, tenants: config.tenants });
  return {
    routes: createRouteTable({ chat, models, admin, interceptors }),
    providers,
    breakers,
    limiter,
    metrics,
    state,
    healthDetails: () => ({ breakers: breakers.states(), inFlight: limiter.counts(), state: state.health() }),
    async close() {
      breakers.shutdown();
      admission.close();
      authenticator.close();
      await Promise.all([...providers.values()].map((provider) => provider.close()));
      await tracing.shutdown();
      await state.close();
    },
  };
}
