import { Code } from "@connectrpc/connect";
import type { AttemptTimeouts, ModelConfig, SluiceConfig } from "../config/schema.js";
import type { Provider } from "../providers/provider.js";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import type { AttemptTarget } from "../telemetry/call-telemetry.js";

/** One provider + upstream model serving an alias, resolved at startup. */
export interface Deployment {
  /** "provider/model": how strategies, breakers and conditional routes name it. */
  readonly key: string;
  readonly provider: Provider;
  /** The provider's model id. */
  readonly model: string;
  /** Output limit sent when the request sets none. */
  readonly maxOutputTokens: number | undefined;
  /** Share of traffic for weighted strategies. */
  readonly weight: number;
  readonly timeouts: AttemptTimeouts;
  /** Concurrency limit; undefined = unlimited. */
  readonly maxInFlight: number | undefined;
  /** What telemetry says about attempts on it (provider, address, price), built once. */
  readonly target: AttemptTarget;
}

/** A model alias callers name in `CompleteRequest.model`. */
export interface ModelRoute {
  readonly alias: string;
  readonly config: ModelConfig;
  /** In configured order; the first is the primary. */
  readonly deployments: readonly Deployment[];
}

export interface ModelCatalog {
  /** Every alias, in configuration order. */
  readonly routes: readonly ModelRoute[];
  /** The route for an alias; NOT_FOUND (reason MODEL_NOT_FOUND) naming the model otherwise. */
  resolve(alias: string): ModelRoute;
}

/** Longest model name echoed back in an error: enough to recognise, bounded against abuse. */
const maxEchoedModelLength = 128;

/** A caller's model name as an error may echo it: cut to 128 characters (and "…"). */
export function echoedModelName(model: string): string {
  return model.length > maxEchoedModelLength ? `${model.slice(0, maxEchoedModelLength)}…` : model;
}

/**
 * Resolves aliases to deployments once, at startup (configuration is validated by then:
 * every deployment names a configured provider), so a request does one Map lookup.
 */
export function createModelCatalog(config: SluiceConfig, providers: ReadonlyMap<string, Provider>): ModelCatalog {
  const byAlias = new Map<string, ModelRoute>();
  for (const [alias, model] of Object.entries(config.models)) {
    const deployments = model.deployments.map((deployment): Deployment => {
      const provider = providers.get(deployment.provider);
      if (provider === undefined) throw new Error(`models.${alias}: provider ${deployment.provider} was not created`);
      const key = `${deployment.provider}/${deployment.model}`;
      return {
        key,
        provider,
        model: deployment.model,
        maxOutputTokens: deployment.maxOutputTokens,
        weight: deployment.weight,
        timeouts: deployment.timeouts,
        maxInFlight: deployment.maxInFlight,
        target: attemptTarget(key, deployment, provider, config),
      };
    });
    byAlias.set(alias, { alias, config: model, deployments });
  }
  const routes = [...byAlias.values()];
  return {
    routes,
    resolve(alias) {
      const route = byAlias.get(alias);
      if (route !== undefined) return route;
      const shown = echoedModelName(alias);
      throw gatewayError(
        Code.NotFound,
        reasons.modelNotFound,
        `model "${shown}" is not served by this gateway (see ModelService.ListModels)`,
        { model: shown },
      );
    },
  };
}

/** The telemetry view of a deployment: names, the provider's host and port (server.address), price. */
function attemptTarget(
  key: string,
  deployment: SluiceConfig["models"][string]["deployments"][number],
  provider: Provider,
  config: SluiceConfig,
): AttemptTarget {
  const providerConfig = config.providers[deployment.provider];
  let serverAddress = "";
  let serverPort: number | undefined;
  if (providerConfig !== undefined && "baseUrl" in providerConfig) {
    const url = new URL(providerConfig.baseUrl);
    serverAddress = url.hostname;
    serverPort = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  }
  return Object.freeze({
    provider: provider.name,
    providerType: provider.type,
    deployment: key,
    model: deployment.model,
    serverAddress,
    serverPort,
    price: deployment.price,
  });
}
