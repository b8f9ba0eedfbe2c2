import type { SluiceConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";
import type { Provider } from "../providers/provider.js";
import { createProvider } from "../providers/create-providers.js";
import { createModelCatalog } from "../routing/model-catalog.js";
import { createCallPlanner } from "../routing/call-plan.js";
import { createCallRunner } from "../resilience/call-runner.js";
import { createBreakerRegistry, type BreakerRegistry } from "../resilience/breaker-registry.js";
import { createRetryBudget, type RetryBudget } from "../resilience/retry-budget.js";
import { createInFlightLimiter, type InFlightLimiter } from "../resilience/in-flight-limiter.js";
import { createLatencyQuantiles, type LatencyQuantiles } from "../resilience/latency-quantiles.js";
import { createChatService } from "../api/chat-service.js";
import { createModelService } from "../api/model-service.js";
import { createAdminService } from "../api/admin-service.js";
import { createInterceptors } from "../interceptors/index.js";
import { createAuthenticator } from "../identity/authenticator.js";
import { createCallTelemetry } from "../telemetry/call-telemetry-hub.js";
import { createMetrics, type Metrics } from "../telemetry/metrics.js";
import { createTracing, type Tracing } from "../telemetry/tracing.js";
import type { CallTelemetry } from "../telemetry/call-telemetry.js";
import type { RouteTable } from "../server/route-table.js";
import { createRouteTable } from "./route-table.js";
import { createStateStore } from "../state/create-state.js";
import type { StateStore } from "../state/state-store.js";
import { createAdmission, type Admission } from "../limits/admission.js";
import type { Authenticator } from "../identity/authenticator.js";
import { planReload } from "./reload-plan.js";
import { createTokenEstimator } from "../limits/token-estimator.js";
import { createCallCache } from "../cache/call-cache.js";
import { answerStoreFor, closeAnswerStore } from "../cache/answer-store.js";

export interface SluiceDeps {
  readonly logger: Logger;
  /** Where the standard OTEL_* variables are read (process.env in production). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The gateway's services, independent of how they are served (server, tests, in-process
 * transport). One generation per configuration: a reload builds the next from the new
 * configuration and the running one (`createSluice(config, deps, previous)`), and the
 * running one is retired once the calls it started have ended.
 */
export interface Sluice {
  /** The configuration this generation was built from. */
  readonly config: SluiceConfig;
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
  /** Calls this generation's route table started that have not ended yet. */
  readonly callsInProgress: number;
  /**
   * After a reload: waits until every call this generation started has ended, then closes
   * what `successor` does not share (providers removed or reconfigured, a replaced state
   * store or tracer, the authenticator and admission) and drops the breakers and latency
   * samples of deployments the newest configuration no longer has.
   */
  retire(successor: Sluice): Promise<void>;
  /** Closes provider pools and breaker timers; exports the spans still buffered. */
  close(): Promise<void>;
}

/** What a generation holds besides its public face: what the next one may reuse. */
interface Parts {
  readonly tracing: Tracing;
  readonly retryBudget: RetryBudget;
  readonly latencies: LatencyQuantiles;
  readonly admission: Admission;
  readonly authenticator: Authenticator;
  /** Shared by every generation: what the metrics' scrape-time gauges read, and the newest deployment keys. */
  readonly shared: Shared;
}

interface Shared {
  breakers: BreakerRegistry;
  limiter: InFlightLimiter;
  retryBudget: RetryBudget;
  state: StateStore;
  /** The deployment keys of the newest generation. */
  deploymentKeys: ReadonlySet<string>;
}

const partsOf = new WeakMap<Sluice, Parts>();

/**
 * Builds providers, the model catalog and the services from a validated configuration.
 * With `previous` (a configuration reload), what is unchanged is taken over rather than
 * built (reload-plan.ts): providers whose configuration is deep-equal (their pools and key
 * state), the breaker registry, latency samples, in-flight limiter and retry budget (keyed
 * by deployment, so unchanged deployments keep their state), the state store when `state`
 * is unchanged (limit counters), tracing, and always the metrics registry (its bounded
 * label sets extended by the new names). Authenticator, admission, catalog, planner,
 * runner, services and the route table are always new.
 */
export function createSluice(config: SluiceConfig, deps: SluiceDeps, previous?: Sluice): Sluice {
  const before = previous === undefined ? undefined : partsOf.get(previous);
  if (previous !== undefined && before === undefined) throw new Error("createSluice: previous is not a Sluice");
  const plan = previous === undefined ? undefined : planReload(previous.config, config);
  const providers = new Map<string, Provider>();
  try {
    for (const [name, providerConfig] of Object.entries(config.providers)) {
      const kept = plan?.keepProviders.has(name) === true ? previous!.providers.get(name) : undefined;
      providers.set(name, kept ?? createProvider(name, providerConfig, { logger: deps.logger }));
    }
  } catch (err) {
    // A key file that does not read: close what this attempt built, never a kept one.
    for (const [name, provider] of providers) if (previous?.providers.get(name) !== provider) void provider.close();
    throw err;
  }
  const built: { state?: StateStore; tracing?: Tracing } = {};
  try {
    return assemble(config, deps, providers, previous, before, plan, built);
  } catch (err) {
    for (const [name, provider] of providers) if (previous?.providers.get(name) !== provider) void provider.close();
    if (built.state !== undefined) void built.state.close();
    if (built.tracing !== undefined) void built.tracing.shutdown();
    throw err;
  }
}

function assemble(
  config: SluiceConfig,
  deps: SluiceDeps,
  providers: Map<string, Provider>,
  previous: Sluice | undefined,
  before: Parts | undefined,
  plan: ReturnType<typeof planReload> | undefined,
  built: { state?: StateStore; tracing?: Tracing },
): Sluice {
  const catalog = createModelCatalog(config, providers);
  const deploymentKeys = new Set(catalog.routes.flatMap((route) => route.deployments.map((deployment) => deployment.key)));
  const state =
    plan?.keepState === true ? previous!.state : (built.state = createStateStore(config.state, { logger: deps.logger }));
  // Logged once per transition, never per call: an open breaker skips its deployment silently.
  const breakers =
    plan?.keepBreakers === true
      ? previous!.breakers
      : createBreakerRegistry(config.resilience.breaker, {
          onStateChange: (deployment, state) => {
            if (state === "open") deps.logger.warn({ deployment, state }, "circuit breaker opened: deployment skipped");
            else deps.logger.info({ deployment, state }, `circuit breaker ${state}`);
          },
        });
  const retryBudget = plan?.keepRetryBudget === true ? before!.retryBudget : createRetryBudget(config.resilience.retryBudget);
  const planner = createCallPlanner(catalog);
  const limiter = previous?.limiter ?? createInFlightLimiter();
  const latencies = before?.latencies ?? createLatencyQuantiles();
  const tracing =
    plan?.keepTracing === true
      ? before!.tracing
      : (built.tracing = createTracing({ config: config.telemetry.tracing, env: deps.env ?? {}, logger: deps.logger }));
  const labels = {
    aliases: catalog.routes.map((route) => route.alias),
    tenants: Object.keys(config.tenants),
    deployments: [...deploymentKeys],
  };
  let shared: Shared;
  let metrics: Metrics;
  if (before === undefined) {
    shared = { breakers, limiter, retryBudget, state, deploymentKeys };
    const gauges = shared;
    metrics = createMetrics({
      ...labels,
      breakerStates: () => gauges.breakers.states(),
      inFlight: () => gauges.limiter.counts(),
      retryBudget: () => gauges.retryBudget.stats,
      stateHealth: () => gauges.state.health(),
    });
  } else {
    shared = before.shared;
    metrics = previous!.metrics;
  }
  const callTelemetry = createCallTelemetry({ tracing, metrics });
  // With Redis, signed-request nonces are shared so a replay to another replica is caught too.
  const authenticator = createAuthenticator(config, {
    logger: deps.logger,
    nonces: state.backend === "redis" ? state : undefined,
  });
  const calls = trackCalls(callTelemetry);
  const interceptors = createInterceptors({ logger: deps.logger, telemetry: calls.telemetry, authenticator });
  const runner = createCallRunner({ breakers, retryBudget, planner, limiter, latencies, telemetry: callTelemetry });
  const admission = createAdmission({
    config,
    state,
    estimator: createTokenEstimator(),
    logger: deps.logger,
    observer: metrics.limits,
  });
  const answers = answerStoreFor(state, config, deps.logger);
  const cache = createCallCache({
    config: config.cache,
    idempotency: config.idempotency,
    store: answers,
    failOpen: config.state.redis?.failMode !== "closed",
    observer: metrics.cache,
  });
  const chat = createChatService({ catalog, planner, runner, admission, cache });
  const models = createModelService(catalog);
  const admin = createAdminService({ state, tenants: config.tenants, cache: answers });

  // Nothing below throws: the new generation becomes the shared one's newest.
  if (before !== undefined) {
    metrics.extendLabels(labels);
    Object.assign(shared, { breakers, limiter, retryBudget, state, deploymentKeys });
    // Deployments gone from the configuration: their breakers and samples are dropped now
    // (calls still running on them pass through or record into a fresh entry, dropped at retirement).
    breakers.retain(deploymentKeys);
    latencies.retain(deploymentKeys);
    limiter.retain(deploymentKeys);
  }

  const sluice: Sluice = {
    config,
    routes: createRouteTable({ chat, models, admin, interceptors }),
    providers,
    breakers,
    limiter,
    metrics,
    state,
    get callsInProgress() {
      return calls.inProgress;
    },
    healthDetails: () => ({ breakers: breakers.states(), inFlight: limiter.counts(), state: state.health() }),
    async retire(successor) {
      await calls.idle();
      await admission.closeWhenIdle();
      authenticator.close();
      const successorProviders = new Set(successor.providers.values());
      const gone = [...providers.values()].filter((provider) => !successorProviders.has(provider));
      // undici's Pool.close() lets requests still in flight finish first; none are left by now anyway.
      await Promise.all(gone.map((provider) => provider.close()));
      const next = partsOf.get(successor);
      if (breakers !== successor.breakers) breakers.shutdown();
      else breakers.retain(shared.deploymentKeys);
      latencies.retain(shared.deploymentKeys);
      limiter.retain(shared.deploymentKeys);
      if (next !== undefined && tracing !== next.tracing) await tracing.shutdown();
      if (state !== successor.state) await Promise.all([state.close(), closeAnswerStore(state)]);
    },
    async close() {
      breakers.shutdown();
      admission.close();
      authenticator.close();
      await Promise.all([...providers.values()].map((provider) => provider.close()));
      await tracing.shutdown();
      await Promise.all([state.close(), closeAnswerStore(state)]);
    },
  };
  partsOf.set(sluice, { tracing, retryBudget, latencies, admission, authenticator, shared });
  return sluice;
}

/**
 * Counts the calls of one generation: the access log begins and ends every call's telemetry
 * exactly once (its `end` after the call's `onEnd`, where admission settles), so a
 * generation with none in progress has nothing left that needs its providers or state.
 */
function trackCalls(telemetry: CallTelemetry): { telemetry: CallTelemetry; readonly inProgress: number; idle(): Promise<void> } {
  let inProgress = 0;
  let waiters: (() => void)[] = [];
  return {
    telemetry: {
      begin(record, header) {
        inProgress++;
        telemetry.begin(record, header);
      },
      attempt: (record, target, role) => telemetry.attempt(record, target, role),
      event: (record, event, deployment) => telemetry.event(record, event, deployment),
      end(record, error) {
        try {
          telemetry.end(record, error);
        } finally {
          if (--inProgress === 0 && waiters.length > 0) {
            const woken = waiters;
            waiters = [];
            for (const wake of woken) wake();
          }
        }
      },
    },
    get inProgress() {
      return inProgress;
    },
    idle() {
      if (inProgress === 0) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
}
