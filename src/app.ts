import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { ChatService } from "../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../gen/sluice/v1/model_service_pb.js";
import type { SluiceConfig } from "./config/schema.js";
import type { Logger } from "./telemetry/logger.js";
import type { Provider } from "./providers/provider.js";
import { createProviders } from "./providers/create-providers.js";
import { createModelCatalog, type ModelCatalog } from "./routing/model-catalog.js";
import { createCallPlanner } from "./routing/call-plan.js";
import { createResilientCaller } from "./upstream/resilient-call.js";
import { createBreakerRegistry, type BreakerRegistry } from "./upstream/breaker-registry.js";
import { createRetryBudget } from "./upstream/retry-budget.js";
import { createInFlightLimiter, type InFlightLimiter } from "./upstream/in-flight-limiter.js";
import { createLatencyQuantiles } from "./routing/latency-quantiles.js";
import { createChatService } from "./api/chat-service.js";
import { createModelService } from "./api/model-service.js";
import { createInterceptors } from "./interceptors/index.js";
import type { UnaryRoute } from "./server/connect-unary-fast-lane.js";
import type { ServerStreamRoute } from "./server/fast-lane-call.js";

export interface SluiceDeps {
  readonly logger: Logger;
}

/** The gateway's services, independent of how they are served (server, tests, in-process transport). */
export interface Sluice {
  /** Registers ChatService and ModelService, with the interceptor chain, on a Connect router. */
  registerRoutes(router: ConnectRouter): void;
  /** The unary RPCs, for the server's Connect JSON fast lane: the same implementations the router serves. */
  readonly unaryRoutes: readonly UnaryRoute[];
  /** The server-streaming RPCs, for the server's gRPC fast lane. */
  readonly streamRoutes: readonly ServerStreamRoute[];
  /** The interceptor chain the router applies (outermost first), for the fast lane to apply too. */
  readonly interceptors: readonly Interceptor[];
  /** The sluice.v1 services served (for health and reflection). */
  readonly services: readonly DescService[];
  /** Every configured provider, by configured name. */
  readonly providers: ReadonlyMap<string, Provider>;
  readonly catalog: ModelCatalog;
  /** One circuit breaker per deployment (states for health and metrics). */
  readonly breakers: BreakerRegistry;
  /** In-flight attempts on deployments with a `maxInFlight` (health and metrics). */
  readonly limiter: InFlightLimiter;
  /** Closes provider pools and breaker timers. */
  close(): Promise<void>;
}

/** Builds providers, the model catalog and the services from a validated configuration. */
export function createSluice(config: SluiceConfig, deps: SluiceDeps): Sluice {
  const providers = createProviders(config);
  const catalog = createModelCatalog(config, providers);
  const interceptors = createInterceptors({ logger: deps.logger });
  const breakers = createBreakerRegistry(config.resilience.breaker);
  const retryBudget = createRetryBudget(config.resilience.retryBudget);
  const planner = createCallPlanner(catalog);
  const limiter = createInFlightLimiter();
  const caller = createResilientCaller({ breakers, retryBudget, planner, limiter, latencies: createLatencyQuantiles() });
  const chat = createChatService({ catalog, planner, caller });
  const models = createModelService(catalog);
  return {
    services: [ChatService, ModelService],
    unaryRoutes: [
      { method: ChatService.method.complete, impl: chat.complete as UnaryRoute["impl"] },
      { method: ModelService.method.listModels, impl: models.listModels as UnaryRoute["impl"] },
    ],
    streamRoutes: [{ method: ChatService.method.streamComplete, impl: chat.streamComplete as ServerStreamRoute["impl"] }],
    interceptors,
    providers,
    catalog,
    breakers,
    limiter,
    registerRoutes(router) {
      router.service(ChatService, chat, { interceptors });
      router.service(ModelService, models, { interceptors });
    },
    async close() {
      breakers.shutdown();
      await Promise.all([...providers.values()].map((provider) => provider.close()));
    },
  };
}
