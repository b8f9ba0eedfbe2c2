import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import type { Candidate } from "./candidate.js";
import type { Deployment, ModelCatalog, ModelRoute } from "./model-catalog.js";
import { selectRoute } from "./conditional-routes.js";
import { createStrategy } from "./strategies/create-strategy.js";
import type { SelectionStrategy } from "./strategies/strategy.js";

export interface CallPlanner {
  /**
   * The deployments to try for one call, in order: the alias's own (narrowed by the first
   * matching conditional route, ordered by its strategy), then each fallback alias's.
   */
  /** `tenant`: the caller's (conditional routes may match it); undefined when anonymous. */
  plan(
    route: ModelRoute,
    request: CompleteRequest,
    header: (name: string) => string | undefined,
    tenant?: string,
  ): readonly Candidate[];
  /** Feedback for latency-aware strategies. */
  observe(key: string, sample: { ttftMs?: number; latencyMs?: number; ok: boolean }): void;
  /** In-flight tracking for P2C: an attempt on `key` started / ended (exactly once each). */
  begin(key: string): void;
  end(key: string): void;
}

export interface CallPlannerDeps {
  readonly random?: () => number;
  readonly now?: () => number;
}

/**
 * Builds each alias's strategy once, at startup. An alias with one deployment, no
 * conditional routes and no fallbacks — the common case — gets a fixed plan: no work and
 * no allocation per call.
 */
export function createCallPlanner(catalog: ModelCatalog, deps: CallPlannerDeps = {}): CallPlanner {
  const strategies = new Map<string, SelectionStrategy | undefined>();
  const fixedPlans = new Map<string, readonly Candidate[]>();
  /** Every strategy that learns from outcomes or counts in-flight calls, by deployment key. */
  const observers = new Map<string, SelectionStrategy[]>();

  for (const route of catalog.routes) {
    const { strategy, stickyKey } = route.config;
    const selection =
      strategy === "ordered"
        ? undefined
        : createStrategy(stickyKey !== undefined ? { type: strategy, stickyKey } : { type: strategy }, deps);
    strategies.set(route.alias, selection);
    if (selection !== undefined && (selection.observe !== undefined || selection.begin !== undefined)) {
      for (const deployment of route.deployments) {
        const list = observers.get(deployment.key) ?? [];
        list.push(selection);
        observers.set(deployment.key, list);
      }
    }
    if (route.deployments.length === 1 && route.config.routes.length === 0 && route.config.fallbacks.length === 0) {
      fixedPlans.set(route.alias, Object.freeze([{ deployment: route.deployments[0]!, route, fallback: false }]));
    }
  }

  function ordered(
    route: ModelRoute,
    request: CompleteRequest,
    header: (name: string) => string | undefined,
    tenant: string | undefined,
  ): readonly Deployment[] {
    let deployments = route.deployments;
    if (route.config.routes.length > 0) {
      const keys = selectRoute(route.config.routes, { metadata: request.metadata, headers: header, tenant });
      if (keys !== undefined) deployments = deployments.filter((d) => keys.includes(d.key));
    }
    const selection = strategies.get(route.alias);
    if (selection === undefined || deployments.length < 2) return deployments;
    const byKey = new Map(deployments.map((d) => [d.key, d]));
    return selection
      .order(
        deployments.map((d) => ({ key: d.key, weight: d.weight })),
        { metadata: request.metadata },
      )
      .map((c) => byKey.get(c.key)!);
  }

  return {
    plan(route, request, header, tenant) {
      const fixed = fixedPlans.get(route.alias);
      if (fixed !== undefined) return fixed;
      const seen = new Set<string>();
      const candidates: Candidate[] = [];
      const add = (owner: ModelRoute, fallback: boolean): void => {
        for (const deployment of ordered(owner, request, header, tenant)) {
          // A deployment shared with a fallback alias is tried once.
          if (seen.has(deployment.key)) continue;
          seen.add(deployment.key);
          candidates.push({ deployment, route: owner, fallback });
        }
      };
      add(route, false);
      for (const alias of route.config.fallbacks) add(catalog.resolve(alias), true);
      return candidates;
    },
    observe(key, sample) {
      const list = observers.get(key);
      if (list === undefined) return;
      for (const strategy of list) strategy.observe?.(key, sample);
    },
    begin(key) {
      const list = observers.get(key);
      if (list === undefined) return;
      for (const strategy of list) strategy.begin?.(key);
    },
    end(key) {
      const list = observers.get(key);
      if (list === undefined) return;
      for (const strategy of list) strategy.end?.(key);
    },
  };
}
