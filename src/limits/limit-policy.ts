import type { BudgetConfig, RateLimitsConfig } from "../config/limits-schema.js";
import type { SluiceConfig } from "../config/schema.js";
import { createModelAccess } from "../identity/model-access.js";
import type { ModelAccess } from "../identity/identity.js";
import type { LimitScope } from "./quota-errors.js";

/** Rate limits that apply at one scope (the tenant, one of its keys, one alias), with the state key they count under. */
export interface ScopedLimits {
  readonly scope: LimitScope;
  /** State key prefix: `t/team-a`, `k/team-a/ci`, `m/team-a/fast`. */
  readonly key: string;
  readonly limits: RateLimitsConfig;
}

/** One limit a call is charged against: its state key, value and where it is configured. */
export interface PlannedLimit {
  readonly key: string;
  readonly limit: number;
  readonly scope: LimitScope;
}

/** The limits a call of one key on one alias is charged against, compiled once per (key, alias). */
export interface ChargePlan {
  readonly requests: readonly PlannedLimit[];
  readonly tokens: readonly PlannedLimit[];
  readonly slots: readonly PlannedLimit[];
}

/** What a tenant's calls are held to, compiled once from its configuration. */
export interface TenantPolicy {
  readonly tenant: string;
  readonly limits: RateLimitsConfig | undefined;
  /** Key id → that key's own limits. */
  readonly keyLimits: ReadonlyMap<string, RateLimitsConfig>;
  /** Alias patterns → limits per alias (each alias counted apart). */
  readonly modelLimits: readonly { readonly access: ModelAccess; readonly limits: RateLimitsConfig }[];
  readonly budget: BudgetConfig | undefined;
  /** Whether any of its limits counts tokens (so its calls need a prompt estimate). */
  readonly countsTokens: boolean;
  /** Whether any of its limits or budgets counts USD (so calls need a price). */
  readonly countsUsd: boolean;
  /** The charge plan of a call by `keyId` on `alias` (remembered: built once per pair). */
  plan(keyId: string, alias: string): ChargePlan;
}

/** Plans remembered per tenant: key ids come from JWT claims too, so the memory is bounded (cleared when full). */
const maxPlans = 4_096;

const hasAny = (limits: RateLimitsConfig | undefined): boolean =>
  limits !== undefined &&
  (limits.requestsPerMinute !== undefined || limits.tokensPerMinute !== undefined || limits.concurrentRequests !== undefined);

/**
 * Each tenant's limits and budget, compiled once: tenants with none are absent, so their
 * calls (and anonymous ones) skip admission's accounting entirely.
 */
export function compileTenantPolicies(config: Pick<SluiceConfig, "tenants">): ReadonlyMap<string, TenantPolicy> {
  const policies = new Map<string, TenantPolicy>();
  for (const [tenant, tenantConfig] of Object.entries(config.tenants)) {
    const keyLimits = new Map<string, RateLimitsConfig>();
    for (const key of tenantConfig.apiKeys) {
      if (hasAny(key.limits)) keyLimits.set(key.id ?? `sha256:${key.sha256.slice(0, 8)}`, key.limits!);
    }
    const modelLimits = Object.entries(tenantConfig.modelLimits)
      .filter(([, limits]) => hasAny(limits))
      .map(([pattern, limits]) => ({ access: createModelAccess([pattern]), limits }));
    const budget = tenantConfig.budget;
    const hasBudget =
      budget !== undefined &&
      (budget.usdPerDay !== undefined ||
        budget.usdPerMonth !== undefined ||
        budget.tokensPerDay !== undefined ||
        budget.tokensPerMonth !== undefined);
    if (!hasAny(tenantConfig.limits) && keyLimits.size === 0 && modelLimits.length === 0 && !hasBudget) continue;
    const every = [tenantConfig.limits, ...keyLimits.values(), ...modelLimits.map((m) => m.limits)];
    const plans = new Map<string, ChargePlan>();
    const policy: TenantPolicy = {
      tenant,
      limits: hasAny(tenantConfig.limits) ? tenantConfig.limits : undefined,
      keyLimits,
      modelLimits,
      budget: hasBudget ? budget : undefined,
      countsTokens:
        every.some((limits) => limits?.tokensPerMinute !== undefined) ||
        budget?.tokensPerDay !== undefined ||
        budget?.tokensPerMonth !== undefined ||
        budget?.usdPerDay !== undefined ||
        budget?.usdPerMonth !== undefined,
      countsUsd: budget?.usdPerDay !== undefined || budget?.usdPerMonth !== undefined,
      plan(keyId, alias) {
        const id = `${keyId}\0${alias}`;
        let plan = plans.get(id);
        if (plan === undefined) {
          if (plans.size >= maxPlans) plans.clear();
          plan = compilePlan(policy, keyId, alias);
          plans.set(id, plan);
        }
        return plan;
      },
    };
    policies.set(tenant, policy);
  }
  return policies;
}

function compilePlan(policy: TenantPolicy, keyId: string, alias: string): ChargePlan {
  const requests: PlannedLimit[] = [];
  const tokens: PlannedLimit[] = [];
  const slots: PlannedLimit[] = [];
  for (const { scope, key, limits } of scopesOf(policy, keyId, alias)) {
    if (limits.requestsPerMinute !== undefined) requests.push({ key: `${key}/rpm`, limit: limits.requestsPerMinute, scope });
    if (limits.tokensPerMinute !== undefined) tokens.push({ key: `${key}/tpm`, limit: limits.tokensPerMinute, scope });
    if (limits.concurrentRequests !== undefined)
      slots.push({ key: `${key}/concurrent`, limit: limits.concurrentRequests, scope });
  }
  return { requests, tokens, slots };
}

/** The scopes whose rate limits apply to a call by `keyId` on `alias`: the tenant, the key, the alias. */
export function scopesOf(policy: TenantPolicy, keyId: string, alias: string): ScopedLimits[] {
  const tenant = policy.tenant;
  const scopes: ScopedLimits[] = [];
  if (policy.limits !== undefined) {
    scopes.push({
      scope: { subject: `tenant:${tenant}`, path: `tenants.${tenant}.limits` },
      key: `t/${tenant}`,
      limits: policy.limits,
    });
  }
  const keyLimits = policy.keyLimits.get(keyId);
  if (keyLimits !== undefined) {
    scopes.push({
      scope: { subject: `key:${tenant}/${keyId}`, path: `tenants.${tenant}.apiKeys[${keyId}].limits` },
      key: `k/${tenant}/${keyId}`,
      limits: keyLimits,
    });
  }
  for (const { access, limits } of policy.modelLimits) {
    if (!access.allows(alias)) continue;
    scopes.push({
      scope: { subject: `model:${tenant}/${alias}`, path: `tenants.${tenant}.modelLimits` },
      key: `m/${tenant}/${alias}`,
      limits,
    });
  }
  return scopes;
}
