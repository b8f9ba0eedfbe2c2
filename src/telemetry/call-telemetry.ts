import type { ConnectError } from "@connectrpc/connect";
import type { CallRecord, TokenPrice } from "./call-record.js";

/** The deployment an upstream attempt goes to: built once per deployment (routing/model-catalog.ts). */
export interface AttemptTarget {
  /** Configured provider name ("openai"), its type ("openai" | "anthropic" | "demo"). */
  readonly provider: string;
  readonly providerType: string;
  /** "provider/model" */
  readonly deployment: string;
  /** The upstream model id requested. */
  readonly model: string;
  /** The provider's host (server.address). */
  readonly serverAddress: string;
  readonly serverPort: number | undefined;
  /** The deployment's prices, when configured (cost of its answers). */
  readonly price: TokenPrice | undefined;
}

/** How this attempt relates to its call. */
export interface AttemptRole {
  /** The alias whose deployment this is (another than requested: a fallback). */
  readonly alias: string;
  /** A hedged (second, parallel) attempt. */
  readonly hedged: boolean;
}

/** What an attempt's answer reported (any subset: a stream reports its start and its end apart). */
export interface AttemptAnswer {
  readonly responseModel?: string | undefined;
  readonly responseId?: string | undefined;
  readonly finishReason?: string | undefined;
  readonly inputTokens?: number | undefined;
  readonly outputTokens?: number | undefined;
  readonly cachedInputTokens?: number | undefined;
  readonly cacheWriteInputTokens?: number | undefined;
  readonly reasoningTokens?: number | undefined;
}

/**
 * How an attempt ended: answered; failed (its error); abandoned because the caller left
 * ("cancelled"); or stopped because another attempt of the same call answered first
 * ("superseded": a hedge race's loser).
 */
export type AttemptOutcome = "ok" | "error" | "cancelled" | "superseded";

/** One upstream attempt as telemetry sees it. `end` is called exactly once; the other calls only before it. */
export interface AttemptObservation {
  /** The W3C `traceparent` to send to the provider: this attempt's span as the parent. Undefined: send none. */
  readonly traceparent: string | undefined;
  /** The first chunk (stream) arrived. */
  firstChunk(): void;
  answered(answer: AttemptAnswer): void;
  end(outcome: AttemptOutcome, error?: unknown): void;
}

/** Things that happen to a call besides attempts: they become span events and counters. */
export type CallEvent =
  /** A deployment was skipped: its circuit is open. */
  | "breaker_open_skip"
  /** A deployment was skipped: at its `maxInFlight`. */
  | "in_flight_limit_skip"
  /** A retry was due but the process-wide retry budget is spent: the call failed over instead. */
  | "retry_budget_exhausted"
  /** The call moved on to a fallback alias. */
  | "fallback"
  /** Every candidate failed: the alias's degraded answer was sent. */
  | "degraded";

/**
 * The telemetry of calls: one implementation (call-telemetry-hub.ts) feeds the tracing and
 * metrics backends; the request path sees only this. `begin` and `end` are the
 * interceptor's; `attempt` and `event` the call runner's.
 */
export interface CallTelemetry {
  /** Starts a call's telemetry (the server span, the caller's trace context from `header`). */
  begin(record: CallRecord, header: Headers): void;
  attempt(record: CallRecord, target: AttemptTarget, role: AttemptRole): AttemptObservation;
  event(record: CallRecord, event: CallEvent, deployment?: string): void;
  /** The call ended: `error` undefined when it succeeded. */
  end(record: CallRecord, error: ConnectError | undefined): void;
}

/** An attempt nobody observes (no record: a call outside the interceptor chain, e.g. a unit test). */
export const unobservedAttempt: AttemptObservation = Object.freeze({
  traceparent: undefined,
  firstChunk() {},
  answered() {},
  end() {},
});
