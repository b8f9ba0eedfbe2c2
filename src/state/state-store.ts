/**
 * Shared state of limits, budgets and usage: one interface, two implementations — this
 * process (memory-state.ts, one replica) and Redis (redis-state.ts, any number of replicas,
 * every operation one atomic Lua script). Both give the same answers for the same calls
 * (test/helpers/state-store-contract.ts runs one suite against each).
 *
 * Keys are opaque strings the caller builds (limits/limit-keys.ts); amounts are integers
 * (tokens, requests, micro-USD), so Redis never adds floats.
 */

/** A sliding-window limit charged `cost` units: at most `limit` units in any `windowMs`. */
export interface WindowCharge {
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly cost: number;
}

/** A concurrency slot: at most `limit` reservations held at once under `key`. */
export interface SlotCharge {
  readonly key: string;
  readonly limit: number;
}

/**
 * A budget reservation: `spent` (settled) + reservations in force + `amount` must stay within
 * `limit` until `periodEndMs` (when the key's period turns and a new key begins).
 */
export interface BudgetCharge {
  readonly key: string;
  readonly limit: number;
  readonly amount: number;
  /** Epoch ms at which the period ends (the key then expires). */
  readonly periodEndMs: number;
}

/** Everything one call reserves, admitted all together or not at all. */
export interface AdmissionRequest {
  /** Unique per call: names its reservations (settle and renew find them by it). */
  readonly id: string;
  readonly windows: readonly WindowCharge[];
  readonly slots: readonly SlotCharge[];
  readonly budgets: readonly BudgetCharge[];
  /** How long slots and budget reservations last unless renewed. */
  readonly leaseMs: number;
}

/** Where a sliding window stands after an admission (the `x-ratelimit-*` headers). */
export interface WindowState {
  /** Units left in the window now. */
  readonly remaining: number;
  /** Milliseconds until the window holds nothing of what is in it now (all of the limit free again). */
  readonly resetMs: number;
}

export type AdmissionOutcome =
  | {
      readonly admitted: true;
      /** One per `windows` entry, in order. */
      readonly windows: readonly WindowState[];
    }
  | {
      readonly admitted: false;
      /** Which charge refused: its kind and index in the request. */
      readonly kind: "window" | "slot" | "budget";
      readonly index: number;
      /** When the refused charge could be admitted: the window frees enough, a slot may free, the period turns. */
      readonly retryAfterMs: number;
      /** One per `windows` entry checked before the refusal (for the headers); may be shorter than `windows`. */
      readonly windows: readonly WindowState[];
    };

/** What a call used, against what it reserved: the same keys as its AdmissionRequest. */
export interface Settlement {
  readonly id: string;
  /**
   * Per window: what was reserved and the actual cost, which replaces the reservation while it
   * is in the window; once it has left, only an excess over the reservation is counted, from now.
   */
  readonly windows: readonly {
    readonly key: string;
    readonly windowMs: number;
    readonly reserved: number;
    readonly cost: number;
  }[];
  readonly slots: readonly string[];
  /** Per budget: the amount actually spent (the reservation is released). */
  readonly budgets: readonly { readonly key: string; readonly spent: number; readonly periodEndMs: number }[];
}

/** One finished call in the usage ledger. */
export interface UsageEntry {
  readonly tenant: string;
  readonly keyId: string;
  readonly alias: string;
  readonly deployment: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Micro-USD (integer); 0 without a price. */
  readonly costMicroUsd: number;
  /** When the call ended (epoch ms): its UTC day and month. */
  readonly at: number;
}

export type UsagePeriod = "day" | "month";

/** Usage totals of one tenant, key and model within one period. */
export interface UsageRow {
  readonly tenant: string;
  readonly keyId: string;
  readonly alias: string;
  readonly deployment: string;
  readonly requests: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costMicroUsd: number;
}

export interface UsageQuery {
  /** Empty: every tenant. */
  readonly tenant: string;
  readonly period: UsagePeriod;
  /** `YYYY-MM-DD` (day) or `YYYY-MM` (month), UTC. */
  readonly bucket: string;
}

/** Whether the store answers: "ok", or "degraded" while its backend is unreachable (with why). */
export interface StateHealth {
  readonly status: "ok" | "degraded";
  readonly backend: "memory" | "redis";
  readonly detail?: string;
}

export interface StateStore {
  readonly backend: "memory" | "redis";
  /** Reserves every charge or none. Rejects (StateUnavailableError) when the backend cannot answer. */
  admit(request: AdmissionRequest, now: number): Promise<AdmissionOutcome> | AdmissionOutcome;
  /** Releases a call's slots and reservations and records what it used. Never rejects (failures are reported). */
  settle(settlement: Settlement, now: number): Promise<void> | void;
  /** Extends the leases of calls in progress (their slots and budget reservations) by `leaseMs` from now. */
  renew(
    calls: readonly { readonly id: string; readonly slots: readonly string[]; readonly budgets: readonly string[] }[],
    leaseMs: number,
    now: number,
  ): Promise<void> | void;
  /** Adds a finished call to the usage ledger. Never rejects. */
  recordUsage(entry: UsageEntry): Promise<void> | void;
  /** Usage rows for a tenant (or all) in one period. */
  usage(query: UsageQuery): Promise<UsageRow[]>;
  /** True the first time `key` is seen within `ttlMs` (signed-request nonces); false when it was seen. */
  rememberOnce(key: string, ttlMs: number, now: number): Promise<boolean> | boolean;
  health(): StateHealth;
  close(): Promise<void>;
}

/** The backend did not answer (Redis down or slow): the fail mode decides what the call gets. */
export class StateUnavailableError extends Error {
  override readonly name = "StateUnavailableError";
}
