import { SlidingWindow } from "./sliding-window.js";
import type {
  AdmissionOutcome,
  AdmissionRequest,
  Settlement,
  StateHealth,
  StateStore,
  UsageEntry,
  UsageQuery,
  UsageRow,
  WindowState,
} from "./state-store.js";
import { type UsageBuckets, usageBuckets } from "./usage-buckets.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a refused slot's caller is told to wait: slots free when calls end, which nobody can predict. */
export const slotRetryMs = 1_000;

interface Budget {
  spent: number;
  reserved: number;
  readonly periodEndMs: number;
  /** Reservation id → amount and lease expiry. */
  readonly reservations: Map<string, { amount: number; expiresAt: number }>;
}

/** Day buckets of the usage ledger kept in memory (older ones are dropped); month buckets: two years. */
const keptDays = 62;
const keptMonths = 24;

/**
 * Limits, budgets and usage in this process: the embedded default (one replica needs nothing
 * else). Every operation is synchronous, so an admission's checks and reservations cannot
 * interleave with another's. Same semantics as the Redis store (test/helpers/state-store-contract.ts).
 */
export function createMemoryState(): StateStore {
  const windows = new Map<string, SlidingWindow>();
  /** Slot key → reservation id → lease expiry. */
  const slots = new Map<string, Map<string, number>>();
  const budgets = new Map<string, Budget>();
  /** "day:2026-12-04" → row key → row (counted in place; copies are handed out). */
  const ledger = new Map<string, Map<string, Mutable<UsageRow>>>();
  const seen = new Map<string, number>();
  let sweptAt = 0;
  /** The ledger's bucket names of the last day a call ended in (nearly every call ends in the same day as the last). */
  let bucketsOf: { readonly buckets: UsageBuckets; readonly names: readonly [string, string] } | undefined;

  function ledgerBuckets(at: number): readonly [string, string] {
    const buckets = usageBuckets(at);
    if (bucketsOf?.buckets !== buckets) bucketsOf = { buckets, names: [`day:${buckets.day}`, `month:${buckets.month}`] };
    return bucketsOf.names;
  }

  function slotHolders(key: string, now: number): Map<string, number> {
    let holders = slots.get(key);
    if (holders === undefined) {
      holders = new Map();
      slots.set(key, holders);
    }
    for (const [id, expiresAt] of holders) if (expiresAt <= now) holders.delete(id);
    return holders;
  }

  function budgetOf(key: string, periodEndMs: number, now: number): Budget {
    let budget = budgets.get(key);
    if (budget === undefined) {
      budget = { spent: 0, reserved: 0, periodEndMs, reservations: new Map() };
      budgets.set(key, budget);
    }
    for (const [id, reservation] of budget.reservations) {
      if (reservation.expiresAt > now) continue;
      budget.reserved -= reservation.amount;
      budget.reservations.delete(id);
    }
    return budget;
  }

  /** Forgets what can no longer matter: empty windows and slot sets, budgets of past periods, old usage. */
  function sweep(now: number): void {
    if (now - sweptAt < 10_000) return;
    sweptAt = now;
    for (const [key, budget] of budgets) if (budget.periodEndMs <= now) budgets.delete(key);
    for (const [key, holders] of slots) {
      for (const [id, expiresAt] of holders) if (expiresAt <= now) holders.delete(id);
      if (holders.size === 0) slots.delete(key);
    }
    for (const [key, expiresAt] of seen) {
      if (expiresAt > now) break;
      seen.delete(key);
    }
    const oldestDay = `day:${usageBuckets(now - keptDays * 86_400_000).day}`;
    const date = new Date(now);
    const oldestMonth = `month:${usageBuckets(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() - keptMonths, 1)).month}`;
    for (const bucket of ledger.keys()) {
      // ISO dates sort as strings.
      if (bucket.startsWith("day:") ? bucket < oldestDay : bucket < oldestMonth) ledger.delete(bucket);
    }
  }

  return {
    backend: "memory",

    admit(request: AdmissionRequest, now: number): AdmissionOutcome {
      sweep(now);
      const states: WindowState[] = [];
      for (let i = 0; i < request.windows.length; i++) {
        const charge = request.windows[i]!;
        let window = windows.get(charge.key);
        if (window === undefined) {
          window = new SlidingWindow();
          windows.set(charge.key, window);
        }
        window.prune(now, charge.windowMs);
        if (window.total + charge.cost > charge.limit) {
          states.push({ remaining: Math.max(0, charge.limit - window.total), resetMs: window.resetMs(now, charge.windowMs) });
          return {
            admitted: false,
            kind: "window",
            index: i,
            retryAfterMs: window.waitFor(charge.cost, charge.limit, now, charge.windowMs),
            windows: states,
          };
        }
        states.push({ remaining: charge.limit - window.total - charge.cost, resetMs: charge.windowMs });
      }
      for (let i = 0; i < request.slots.length; i++) {
        const charge = request.slots[i]!;
        if (slotHolders(charge.key, now).size >= charge.limit) {
          return { admitted: false, kind: "slot", index: i, retryAfterMs: slotRetryMs, windows: states };
        }
      }
      for (let i = 0; i < request.budgets.length; i++) {
        const charge = request.budgets[i]!;
        const budget = budgetOf(charge.key, charge.periodEndMs, now);
        if (budget.spent + budget.reserved + charge.amount > charge.limit) {
          return {
            admitted: false,
            kind: "budget",
            index: i,
            retryAfterMs: Math.max(1, charge.periodEndMs - now),
            windows: states,
          };
        }
      }
      // Every check passed: reserve everything (nothing can run in between: this is synchronous).
      for (let i = 0; i < request.windows.length; i++) {
        const charge = request.windows[i]!;
        const window = windows.get(charge.key)!;
        window.add(request.id, charge.cost, now);
        states[i] = { remaining: states[i]!.remaining, resetMs: window.resetMs(now, charge.windowMs) };
      }
      for (const charge of request.slots) slots.get(charge.key)!.set(request.id, now + request.leaseMs);
      for (const charge of request.budgets) {
        const budget = budgets.get(charge.key)!;
        budget.reserved += charge.amount;
        budget.reservations.set(request.id, { amount: charge.amount, expiresAt: now + request.leaseMs });
      }
      return { admitted: true, windows: states };
    },

    settle(settlement: Settlement, now: number): void {
      for (const { key, windowMs, reserved, cost } of settlement.windows) {
        const window = windows.get(key);
        if (window === undefined) continue;
        window.prune(now, windowMs);
        window.settle(settlement.id, reserved, cost, now);
        if (window.empty) windows.delete(key);
      }
      for (const key of settlement.slots) slots.get(key)?.delete(settlement.id);
      for (const { key, spent, periodEndMs } of settlement.budgets) {
        const budget = budgetOf(key, periodEndMs, now);
        const reservation = budget.reservations.get(settlement.id);
        if (reservation !== undefined) {
          budget.reserved -= reservation.amount;
          budget.reservations.delete(settlement.id);
        }
        budget.spent += spent;
      }
    },

    renew(calls, leaseMs, now): void {
      const until = now + leaseMs;
      for (const call of calls) {
        for (const key of call.slots) {
          const holders = slots.get(key);
          if (holders?.has(call.id)) holders.set(call.id, until);
        }
        for (const key of call.budgets) {
          const reservation = budgets.get(key)?.reservations.get(call.id);
          if (reservation !== undefined) reservation.expiresAt = until;
        }
      }
    },

    recordUsage(entry: UsageEntry): void {
      const rowKey = `${entry.tenant}\0${entry.keyId}\0${entry.alias}\0${entry.deployment}`;
      for (const bucket of ledgerBuckets(entry.at)) {
        let rows = ledger.get(bucket);
        if (rows === undefined) {
          rows = new Map();
          ledger.set(bucket, rows);
        }
        const row = rows.get(rowKey);
        if (row === undefined) {
          rows.set(rowKey, {
            tenant: entry.tenant,
            keyId: entry.keyId,
            alias: entry.alias,
            deployment: entry.deployment,
            requests: 1,
            inputTokens: entry.inputTokens,
            outputTokens: entry.outputTokens,
            costMicroUsd: entry.costMicroUsd,
          });
          continue;
        }
        row.requests++;
        row.inputTokens += entry.inputTokens;
        row.outputTokens += entry.outputTokens;
        row.costMicroUsd += entry.costMicroUsd;
      }
    },

    async usage(query: UsageQuery): Promise<UsageRow[]> {
      const rows = ledger.get(`${query.period}:${query.bucket}`);
      if (rows === undefined) return [];
      return [...rows.values()].filter((row) => query.tenant === "" || row.tenant === query.tenant).map((row) => ({ ...row }));
    },

    rememberOnce(key, ttlMs, now): boolean {
      const expiresAt = seen.get(key);
      if (expiresAt !== undefined && expiresAt > now) return false;
      // Re-inserted at the end: the map stays in expiry order for one TTL, which the sweep relies on.
      seen.delete(key);
      seen.set(key, now + ttlMs);
      return true;
    },

    health(): StateHealth {
      return { status: "ok", backend: "memory" };
    },

    async close(): Promise<void> {},
  };
}
