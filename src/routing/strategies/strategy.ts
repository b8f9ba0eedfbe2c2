/**
 * The contract every deployment-selection strategy implements. A strategy only *orders*
 * candidates: the service tries the first and fails over down the list, so one interface
 * covers load spreading, latency preference, stickiness and ramping (by weight) alike.
 */

/** One deployment as a strategy sees it. */
export interface Candidate {
  /** "provider/model", the same key breakers and conditional routes use. */
  readonly key: string;
  /**
   * Share of traffic. 0 means "fail-over only": every strategy puts zero-weight candidates
   * last, in the order given, and never first while a positive-weight candidate exists.
   */
  readonly weight: number;
}

/** What a strategy may look at in the request; kept tiny so building it per call is free. */
export interface SelectionContext {
  readonly metadata: Readonly<Record<string, string>>;
}

/** Outcome of one attempt on a deployment. */
export interface OutcomeSample {
  /** Time to first token (streams). Preferred by latency strategies when present. */
  readonly ttftMs?: number;
  /** Whole-call latency (unary). */
  readonly latencyMs?: number;
  readonly ok: boolean;
}

export interface SelectionStrategy {
  /** Orders candidates: the first is tried first, the rest are the fail-over order. Never mutates its input. */
  order(candidates: readonly Candidate[], context: SelectionContext): Candidate[];
  /** Outcome feedback (latency strategies learn from it). */
  observe?(key: string, sample: OutcomeSample): void;
  /** In-flight tracking (P2C): call `begin` when an attempt starts and `end` exactly once when it settles. */
  begin?(key: string): void;
  end?(key: string): void;
}

/** Uniform in [0, 1), like Math.random; injected so tests are deterministic. */
export type RandomSource = () => number;

/** Monotonic milliseconds, like performance.now; injected so tests need no sleeps. */
export type Clock = () => number;
