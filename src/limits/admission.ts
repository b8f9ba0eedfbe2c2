import { randomBytes } from "node:crypto";
import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import type { SluiceConfig } from "../config/schema.js";
import { invalidArgument } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import type { Identity } from "../identity/identity.js";
import type { Candidate } from "../routing/candidate.js";
import type { ModelRoute } from "../routing/model-catalog.js";
import type { BudgetCharge, SlotCharge, StateStore, WindowCharge } from "../state/state-store.js";
import { StateUnavailableError } from "../state/state-store.js";
import { periodEnd, usageBuckets } from "../state/usage-buckets.js";
import type { CallRecord, TokenPrice } from "../telemetry/call-record.js";
import type { Logger } from "../telemetry/logger.js";
import { compileTenantPolicies, type TenantPolicy } from "./limit-policy.js";
import { type LimitName, type LimitScope, limitExceeded, requestTooLarge, stateUnavailable } from "./quota-errors.js";
import { rateLimitHeaders } from "./rate-limit-headers.js";
import { forProvider, type TokenEstimator } from "./token-estimator.js";

/** What admission hears about its decisions (metrics). */
export interface AdmissionObserver {
  /** A call a limit refused. */
  refused(tenant: string, limit: LimitName | "context_window"): void;
  /** The state store could not answer; `admitted`: the fail mode let the call through. */
  stateFailed(operation: string, admitted: boolean): void;
}

export interface AdmissionDeps {
  readonly config: Pick<SluiceConfig, "tenants" | "state" | "limits">;
  readonly state: StateStore;
  readonly estimator: TokenEstimator;
  readonly logger: Logger;
  readonly observer?: AdmissionObserver;
  /** Epoch ms; tests pass a clock. */
  readonly now?: () => number;
}

export interface AdmissionCall {
  readonly request: CompleteRequest;
  /** The alias the caller asked for. */
  readonly route: ModelRoute;
  /** The deployments planned for it, its fallbacks' included. */
  readonly candidates: readonly Candidate[];
  readonly identity: Identity;
  readonly record: CallRecord | undefined;
  /** Where the `x-ratelimit-*` headers go (the response's headers). */
  readonly responseHeader: Headers;
}

export interface Admission {
  /**
   * Checks the context window and the caller's limits and budgets, reserving what the call
   * may use; throws the refusal (RESOURCE_EXHAUSTED, INVALID_ARGUMENT for a prompt no
   * candidate can hold). Returns the candidates that can hold the prompt. A promise only
   * when something must be waited for (the tokenizer's first load, Redis).
   */
  admit(call: AdmissionCall): readonly Candidate[] | Promise<readonly Candidate[]>;
  /** Stops renewing leases. */
  close(): void;
  /**
   * A configuration reload replaced this admission: resolves once every call it admitted
   * has ended (their leases renewed until then), then closes it.
   */
  closeWhenIdle(): Promise<void>;
}

/** What one admitted call holds, settled when it ends. */
interface Ticket {
  readonly id: string;
  readonly tenant: string;
  readonly windows: readonly WindowCharge[];
  readonly slots: readonly SlotCharge[];
  readonly budgets: readonly (BudgetCharge & { readonly unit: "usd" | "tokens" })[];
  readonly promptEstimate: number;
  /** The price reservations were made at (the highest among the candidates), for calls that reported no price. */
  readonly price: TokenPrice | undefined;
}

const minuteMs = 60_000;
/** A stream's characters per token when the provider reported no usage (cancelled or cut): the usual English ratio. */
const charsPerToken = 4;

/**
 * Admission (issue "limits"): per tenant (and per key, per alias) sliding-minute request
 * and token limits and concurrency, daily/monthly budgets in USD and tokens, and the
 * context-window pre-check. Token limits are charged at admission with an estimate — the
 * prompt's tokens (a real tokenizer) plus the call's max output tokens — and every
 * reservation is settled when the call ends with what the provider reported (a stream cut
 * without usage: its prompt estimate and the characters it streamed), so a limit is never
 * applied only after the fact. Budgets reserve at the highest price among the alias's
 * deployments, so concurrent first calls cannot overspend.
 *
 * Runs in the chat service once the request is validated and its alias resolved (admission
 * needs both), for every protocol and lane alike. Calls of tenants without limits, and
 * anonymous ones, cost one Map lookup (plus the context check when the alias has a window).
 */
export function createAdmission(deps: AdmissionDeps): Admission {
  const { config, state, estimator, observer } = deps;
  const now = deps.now ?? Date.now;
  const policies = compileTenantPolicies(config);
  const failOpen = config.state.redis?.failMode !== "closed";
  const leaseMs = config.state.leaseMs;
  const contextShare = 1 - config.limits.contextMargin;
  // Unique across replicas sharing one Redis: a random process prefix and a counter.
  const idPrefix = randomBytes(6).toString("base64url");
  let nextId = 0;
  /** Calls in progress holding slots or budget reservations: their leases are renewed until they end. */
  const live = new Map<string, Ticket>();
  let renewTimer: NodeJS.Timeout | undefined;
  let onIdle: (() => void) | undefined;

  function renewLeases(): void {
    if (live.size === 0) {
      clearInterval(renewTimer);
      renewTimer = undefined;
      return;
    }
    const calls = [...live.values()].map((ticket) => ({
      id: ticket.id,
      slots: ticket.slots.map((slot) => slot.key),
      budgets: ticket.budgets.map((budget) => budget.key),
    }));
    const renewed = state.renew(calls, leaseMs, now());
    if (renewed instanceof Promise) renewed.catch(() => observer?.stateFailed("renew", true));
  }

  function hold(ticket: Ticket): void {
    if (ticket.slots.length === 0 && ticket.budgets.length === 0) return;
    live.set(ticket.id, ticket);
    renewTimer ??= setInterval(renewLeases, Math.floor(leaseMs / 3)).unref();
  }

  /** The output tokens a call may produce: its own maximum, its deployment's, or the configured default. */
  function maxOutputOf(request: CompleteRequest, route: ModelRoute): number {
    return request.maxOutputTokens ?? route.deployments[0]?.maxOutputTokens ?? config.limits.defaultMaxOutputTokens;
  }

  /** A cheap upper bound of the prompt's tokens (a token is at least one UTF-8 byte; a UTF-16 unit at most 3). */
  function promptUpperBound(request: CompleteRequest): number {
    let chars = 0;
    let images = 0;
    for (const message of request.messages) {
      chars += 16 + message.name.length;
      for (const part of message.content) {
        if (part.part.case === "text") chars += part.part.value.length;
        else images++;
      }
      for (const call of message.toolCalls) chars += call.name.length + call.arguments.length;
    }
    for (const tool of request.tools) chars += tool.name.length + tool.description.length + 4 * 1024;
    return chars * 3 + images * 2_000;
  }

  /** The candidates whose alias's context window holds `promptTokens` + max output; all when none sets a window. */
  function fitting(call: AdmissionCall, promptTokens: (providerType: string) => number): readonly Candidate[] {
    const maxOutput = maxOutputOf(call.request, call.route);
    return call.candidates.filter((candidate) => {
      const window = candidate.route.config.contextWindow;
      if (window === undefined) return true;
      return promptTokens(candidate.deployment.target.providerType) + maxOutput <= window * contextShare;
    });
  }

  function contextRefusal(call: AdmissionCall, prompt: number): never {
    observer?.refused(call.identity.tenant, "context_window");
    const window = call.route.config.contextWindow ?? 0;
    const maxOutput = maxOutputOf(call.request, call.route);
    throw invalidArgument([
      {
        field: "messages",
        reason: reasons.contextLengthExceeded,
        description:
          `the prompt (~${prompt} tokens) plus max_output_tokens (${maxOutput}) exceeds what model ${call.route.alias} ` +
          `accepts: ${Math.floor(window * contextShare)} of its ${window}-token context window (limits.contextMargin ` +
          `${config.limits.contextMargin}); shorten the conversation or lower max_output_tokens`,
      },
    ]);
  }

  /** The highest price among the candidates (reservations must cover whichever deployment answers). */
  function highestPrice(candidates: readonly Candidate[]): TokenPrice | undefined {
    let highest: TokenPrice | undefined;
    for (const { deployment } of candidates) {
      const price = deployment.target.price;
      if (price === undefined) continue;
      if (
        highest === undefined ||
        price.inputPerMillion + price.outputPerMillion > highest.inputPerMillion + highest.outputPerMillion
      ) {
        highest = price;
      }
    }
    return highest;
  }

  function microUsd(price: TokenPrice | undefined, input: number, output: number): number {
    if (price === undefined) return 0;
    return Math.ceil(input * price.inputPerMillion + output * price.outputPerMillion);
  }

  /** The charges of a call under `policy`; throws when one call alone exceeds a token limit. */
  function charges(
    call: AdmissionCall,
    policy: TenantPolicy,
    tokens: number,
    price: TokenPrice | undefined,
    at: number,
  ): {
    windows: WindowCharge[];
    scopes: LimitScope[];
    limits: LimitName[];
    slots: SlotCharge[];
    slotScopes: LimitScope[];
    budgets: Ticket["budgets"];
    budgetLimits: LimitName[];
  } {
    const windows: WindowCharge[] = [];
    const scopes: LimitScope[] = [];
    const limits: LimitName[] = [];
    const slots: SlotCharge[] = [];
    const slotScopes: LimitScope[] = [];
    const plan = policy.plan(call.identity.keyId, call.route.alias);
    for (const planned of plan.requests) {
      windows.push({ key: planned.key, limit: planned.limit, windowMs: minuteMs, cost: 1 });
      scopes.push(planned.scope);
      limits.push("requests_per_minute");
    }
    for (const planned of plan.tokens) {
      if (tokens > planned.limit) {
        observer?.refused(policy.tenant, "tokens_per_minute");
        throw requestTooLarge(planned.limit, tokens, planned.scope);
      }
      windows.push({ key: planned.key, limit: planned.limit, windowMs: minuteMs, cost: tokens });
      scopes.push(planned.scope);
      limits.push("tokens_per_minute");
    }
    for (const planned of plan.slots) {
      slots.push({ key: planned.key, limit: planned.limit });
      slotScopes.push(planned.scope);
    }
    const budgets: Ticket["budgets"][number][] = [];
    const budgetLimits: LimitName[] = [];
    const budget = policy.budget;
    if (budget !== undefined) {
      const { day, month } = usageBuckets(at);
      const tenant = policy.tenant;
      const cost = microUsd(price, tokens - maxOutputOf(call.request, call.route), maxOutputOf(call.request, call.route));
      const add = (limit: LimitName, value: number | undefined, unit: "usd" | "tokens", period: "day" | "month") => {
        if (value === undefined) return;
        const bucket = period === "day" ? day : month;
        budgets.push({
          key: `b/${tenant}/${unit}/${bucket}`,
          limit: unit === "usd" ? Math.round(value * 1e6) : value,
          amount: unit === "usd" ? cost : tokens,
          periodEndMs: periodEnd(at, period),
          unit,
        });
        budgetLimits.push(limit);
      };
      add("usd_per_day", budget.usdPerDay, "usd", "day");
      add("usd_per_month", budget.usdPerMonth, "usd", "month");
      add("tokens_per_day", budget.tokensPerDay, "tokens", "day");
      add("tokens_per_month", budget.tokensPerMonth, "tokens", "month");
    }
    return { windows, scopes, limits, slots, slotScopes, budgets, budgetLimits };
  }

  /** What the call used, settled against what it reserved; and its line in the usage ledger. */
  function settle(ticket: Ticket | undefined, record: CallRecord, identity: Identity): void {
    let input = record.inputTokens;
    let output = record.outputTokens;
    if (input === 0 && output === 0 && record.streamedChars > 0) {
      // A stream that ended without usage (cancelled, cut): the provider processed the
      // prompt and billed what it streamed.
      input = ticket?.promptEstimate ?? 0;
      output = Math.ceil(record.streamedChars / charsPerToken);
    }
    const reported = record.costUsd();
    const cost =
      reported !== undefined && (record.inputTokens !== 0 || record.outputTokens !== 0)
        ? Math.round(reported * 1e6)
        : microUsd(record.price ?? ticket?.price, input, output);
    const at = now();
    if (ticket !== undefined) {
      live.delete(ticket.id);
      const settled = state.settle(
        {
          id: ticket.id,
          windows: ticket.windows.map((w) => ({
            key: w.key,
            windowMs: w.windowMs,
            reserved: w.cost,
            cost: w.key.endsWith("/tpm") ? input + output : w.cost,
          })),
          slots: ticket.slots.map((slot) => slot.key),
          budgets: ticket.budgets.map((b) => ({
            key: b.key,
            spent: b.unit === "usd" ? cost : input + output,
            periodEndMs: b.periodEndMs,
          })),
        },
        at,
      );
      if (settled instanceof Promise) settled.catch(() => observer?.stateFailed("settle", true));
    }
    if (record.alias !== "") {
      const recorded = state.recordUsage({
        tenant: identity.tenant,
        keyId: identity.keyId,
        alias: record.alias,
        // A cache hit or a coalesced call made no upstream call: its ledger row is "cache", at no cost.
        deployment:
          record.deployment === "" && (record.cacheStatus === "hit" || record.cacheStatus === "coalesced")
            ? "cache"
            : record.deployment,
        inputTokens: input,
        outputTokens: output,
        costMicroUsd: cost,
        at,
      });
      if (recorded instanceof Promise) recorded.catch(() => observer?.stateFailed("usage", true));
    }
    // After the settle and the usage record were sent: a reload closes an old state store only then.
    if (ticket !== undefined && live.size === 0) onIdle?.();
  }

  function admitWithTokens(
    call: AdmissionCall,
    prompt: (providerType: string) => number,
  ): readonly Candidate[] | Promise<readonly Candidate[]> {
    const primaryType = call.route.deployments[0]?.target.providerType ?? "";
    const kept = fitting(call, prompt);
    if (kept.length === 0) contextRefusal(call, prompt(primaryType));
    const policy = policies.get(call.identity.tenant);
    const record = call.record;
    if (policy === undefined) {
      if (record !== undefined) record.onEnd = (ended) => settle(undefined, ended, call.identity);
      return kept;
    }
    const promptEstimate = policy.countsTokens ? prompt(primaryType) : 0;
    const tokens = promptEstimate + maxOutputOf(call.request, call.route);
    const price = highestPrice(kept);
    const at = now();
    const c = charges(call, policy, tokens, price, at);
    const ticket: Ticket = {
      id: `${idPrefix}.${(nextId++).toString(36)}`,
      tenant: policy.tenant,
      windows: c.windows,
      slots: c.slots,
      budgets: c.budgets,
      promptEstimate,
      price,
    };
    const decided = (outcome: Awaited<ReturnType<StateStore["admit"]>>): readonly Candidate[] => {
      const headers = rateLimitHeaders(c.windows, c.limits, outcome.windows);
      if (!outcome.admitted) {
        const [limit, scope, value] =
          outcome.kind === "window"
            ? [c.limits[outcome.index]!, c.scopes[outcome.index]!, c.windows[outcome.index]!.limit]
            : outcome.kind === "slot"
              ? (["concurrent_requests", c.slotScopes[outcome.index]!, c.slots[outcome.index]!.limit] as const)
              : ([
                  c.budgetLimits[outcome.index]!,
                  { subject: `tenant:${policy.tenant}`, path: `tenants.${policy.tenant}.budget` },
                  budgetValue(c.budgets[outcome.index]!),
                ] as const);
        observer?.refused(policy.tenant, limit);
        const error = limitExceeded(limit, value, scope, outcome.retryAfterMs);
        for (const [name, value] of headers) error.metadata.set(name, value);
        throw error;
      }
      for (const [name, value] of headers) call.responseHeader.set(name, value);
      hold(ticket);
      if (record !== undefined) record.onEnd = (ended) => settle(ticket, ended, call.identity);
      return kept;
    };
    const failed = (err: unknown): readonly Candidate[] => {
      if (!(err instanceof StateUnavailableError)) throw err;
      observer?.stateFailed("admit", failOpen);
      if (!failOpen) throw stateUnavailable();
      // Fail open: served without limits (the ledger still gets its line, when the store answers by then).
      if (record !== undefined) record.onEnd = (ended) => settle(undefined, ended, call.identity);
      return kept;
    };
    if (c.windows.length === 0 && c.slots.length === 0 && c.budgets.length === 0) return decided({ admitted: true, windows: [] });
    let outcome: ReturnType<StateStore["admit"]>;
    try {
      outcome = state.admit({ id: ticket.id, windows: c.windows, slots: c.slots, budgets: c.budgets, leaseMs }, at);
    } catch (err) {
      return failed(err);
    }
    return outcome instanceof Promise ? outcome.then(decided, failed) : decided(outcome);
  }

  return {
    admit(call) {
      const policy = policies.get(call.identity.tenant);
      const windowed = call.candidates.some((candidate) => candidate.route.config.contextWindow !== undefined);
      if (policy === undefined && !windowed) {
        // Nothing to count against: only the usage ledger, at the end.
        if (call.record !== undefined) call.record.onEnd = (ended) => settle(undefined, ended, call.identity);
        return call.candidates;
      }
      // The context check can often be decided without tokenizing: an upper bound that fits, fits.
      const needsTokens =
        policy?.countsTokens === true ||
        (windowed && fitting(call, () => promptUpperBound(call.request)).length < call.candidates.length);
      if (!needsTokens) return admitWithTokens(call, () => 0);
      const counted = estimator.promptTokens(call.request);
      const withCount = (tokens: number) => admitWithTokens(call, (providerType) => forProvider(tokens, providerType));
      return counted instanceof Promise ? counted.then(withCount) : withCount(counted);
    },
    close() {
      clearInterval(renewTimer);
      renewTimer = undefined;
    },
    closeWhenIdle() {
      const close = () => {
        onIdle = undefined;
        clearInterval(renewTimer);
        renewTimer = undefined;
      };
      if (live.size === 0) {
        close();
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        onIdle = () => {
          close();
          resolve();
        };
      });
    },
  };
}

function budgetValue(budget: BudgetCharge & { readonly unit: "usd" | "tokens" }): number {
  return budget.unit === "usd" ? budget.limit / 1e6 : budget.limit;
}
