import { Code } from "@connectrpc/connect";
import type { AttemptTimeouts, ModelConfig, SluiceConfig } from "../config/schema.js";
import type { Provider } from "../providers/provider.js";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";

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
      return {
        key: `${deployment.provider}/${deployment.model}`,
        provider,
        model: deployment.model,
        maxOutputTokens: deployment.maxOutputTokens,
        weight: deployment.weight,
        timeouts: deployment.timeouts,
        maxInFlight: deployment.maxInFlight,
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
      const shown = alias.length > maxEchoedModelLength ? `${alias.slice(0, maxEchoedModelLength)}…` : alias;
      throw gatewayError(
        Code.NotFound,
        reasons.modelNotFound,
        `model "${shown}" is not served by this gateway (see ModelService.ListModels)`,
        { model: shown },
      );
    },
  };
}
