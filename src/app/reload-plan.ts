import { isDeepStrictEqual } from "node:util";
import type { SluiceConfig } from "../config/schema.js";

/**
 * What a configuration reload keeps and what it builds anew (create-sluice.ts), decided by
 * comparing the running configuration with the new one section by section. Kept objects
 * keep their state: a provider's connection pools and key files, the breakers and latency
 * samples of unchanged deployments, the state store's limit counters.
 */
export interface ReloadPlan {
  /** Providers whose configuration is deep-equal: the same Provider object serves on. */
  readonly keepProviders: ReadonlySet<string>;
  /** `resilience.breaker` unchanged: the breaker registry (each deployment's state) is kept. */
  readonly keepBreakers: boolean;
  /** `resilience.retryBudget` unchanged: the retry budget's window is kept. */
  readonly keepRetryBudget: boolean;
  /** `state` unchanged: the same state store (limit counters, budgets, leases). */
  readonly keepState: boolean;
  /** `telemetry.tracing` unchanged: the same tracer and exporter. */
  readonly keepTracing: boolean;
}

export function planReload(previous: SluiceConfig, next: SluiceConfig): ReloadPlan {
  const keepProviders = new Set<string>();
  for (const [name, config] of Object.entries(next.providers)) {
    if (Object.hasOwn(previous.providers, name) && isDeepStrictEqual(previous.providers[name], config)) keepProviders.add(name);
  }
  return {
    keepProviders,
    keepBreakers: isDeepStrictEqual(previous.resilience.breaker, next.resilience.breaker),
    keepRetryBudget: isDeepStrictEqual(previous.resilience.retryBudget, next.resilience.retryBudget),
    keepState: isDeepStrictEqual(previous.state, next.state),
    keepTracing: isDeepStrictEqual(previous.telemetry.tracing, next.telemetry.tracing),
  };
}

/** Names added, removed and changed in one section of the configuration. */
export interface SectionChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

/** What a reload changed: the summary the "configuration reloaded" line carries (names only, never a key). */
export interface ConfigChanges {
  readonly models: SectionChanges;
  readonly providers: SectionChanges;
  readonly tenants: SectionChanges;
  /** Other top-level sections that differ (auth, limits, resilience, state…). */
  readonly sections: readonly string[];
}

export function configChanges(previous: SluiceConfig, next: SluiceConfig): ConfigChanges {
  const named = new Set(["models", "providers", "tenants"]);
  const keys = new Set([...Object.keys(previous), ...Object.keys(next)]);
  const sections = [...keys].filter(
    (key) =>
      !named.has(key) && !isDeepStrictEqual((previous as Record<string, unknown>)[key], (next as Record<string, unknown>)[key]),
  );
  return {
    models: sectionChanges(previous.models, next.models),
    providers: sectionChanges(previous.providers, next.providers),
    tenants: sectionChanges(previous.tenants, next.tenants),
    sections,
  };
}

function sectionChanges(previous: Record<string, unknown>, next: Record<string, unknown>): SectionChanges {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  for (const name of Object.keys(next)) {
    if (!Object.hasOwn(previous, name)) added.push(name);
    else if (!isDeepStrictEqual(previous[name], next[name])) changed.push(name);
  }
  for (const name of Object.keys(previous)) if (!Object.hasOwn(next, name)) removed.push(name);
  return { added, removed, changed };
}

/** True when nothing at all changed. */
export function unchanged(changes: ConfigChanges): boolean {
  return (
    changes.sections.length === 0 &&
    [changes.models, changes.providers, changes.tenants].every(
      (section) => section.added.length + section.removed.length + section.changed.length === 0,
    )
  );
}
