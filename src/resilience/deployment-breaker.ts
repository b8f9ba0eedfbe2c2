import CircuitBreaker from "opossum";
import { UpstreamError } from "../errors/gateway-error.js";

/**
 * One circuit breaker per deployment ("provider/model"), built on opossum: a skipped
 * deployment is not called at all, and the call runner fails over to the next candidate.
 *
 * Why a wrapper and not opossum as is:
 * - Streams have no single promise: their outcome is known at the first event or at the
 *   end. `begin()` hands out a ticket the caller settles later (unary calls use one too).
 * - Only the failure table decides what counts (no status code is read here): an
 *   UpstreamError whose class says `deploymentFault` is a failure; one that does not (400,
 *   429, …) proves the deployment answered; anything else — the caller's cancel or
 *   deadline, a lost hedge, our own bug — is no evidence either way and is not recorded.
 * - opossum counts a call when it starts and keeps its window across close; we record a
 *   closed-state call only when it settles (in-flight streams and cancels never dilute the
 *   error rate) and start a fresh opossum instance on every close (stale failures from
 *   before the open cannot re-open a recovered deployment: see "close starts a clean window").
 */

export type BreakerState = "closed" | "open" | "half-open";

export interface DeploymentBreakerOptions {
  /** Open when more than this share (1–100) of recorded calls in the window were the deployment's fault. */
  readonly errorThresholdPercentage: number;
  /** ... and at least this many calls were recorded in the window. */
  readonly volumeThreshold: number;
  /** Length of the rolling window (10 buckets). */
  readonly rollingWindowMs: number;
  /** Open → half-open (one probe) after this long. */
  readonly resetTimeoutMs: number;
}

export interface DeploymentBreakerDeps {
  /** Called synchronously on every transition (metrics, logs). Must not throw. */
  onStateChange?(name: string, state: BreakerState): void;
}

/** One admitted call whose outcome arrives later (a stream). Settle it exactly once; later calls are ignored. */
export interface BreakerTicket {
  /** The deployment answered (first event arrived, or the stream completed). */
  success(): void;
  /** The attempt failed; the failure table decides whether it counts (non-UpstreamErrors are released). */
  failure(err: unknown): void;
  /** Neither: the caller cancelled, or the attempt was abandoned. Nothing is recorded. */
  release(): void;
}

export interface DeploymentBreaker {
  readonly name: string;
  readonly state: BreakerState;
  /** True = skip this deployment without calling it. A hint: `begin()` decides. */
  isOpen(): boolean;
  /** Admits one attempt; undefined when open or when the half-open probe is already out. */
  begin(): BreakerTicket | undefined;
  /** Clears opossum's timers. Afterwards the breaker admits everything and records nothing. */
  shutdown(): void;
}

/** opossum's window has this many buckets; one interval timer rotates them. */
const rollingCountBuckets = 10;

/** Fails fast with the bad field's name: opossum silently ignores bad values. */
export function validateBreakerOptions(options: DeploymentBreakerOptions): void {
  const { errorThresholdPercentage, volumeThreshold, rollingWindowMs, resetTimeoutMs } = options;
  if (!(errorThresholdPercentage >= 1 && errorThresholdPercentage <= 100)) {
    throw new RangeError(`breaker.errorThresholdPercentage: expected 1–100, got ${errorThresholdPercentage}`);
  }
  if (!Number.isInteger(volumeThreshold) || volumeThreshold < 1) {
    throw new RangeError(`breaker.volumeThreshold: expected an integer ≥ 1, got ${volumeThreshold}`);
  }
  // Below one ms per bucket opossum's rotation interval would be 0: a busy timer.
  if (!Number.isInteger(rollingWindowMs) || rollingWindowMs < rollingCountBuckets) {
    throw new RangeError(`breaker.rollingWindowMs: expected an integer ≥ ${rollingCountBuckets}, got ${rollingWindowMs}`);
  }
  if (!Number.isInteger(resetTimeoutMs) || resetTimeoutMs < 1) {
    throw new RangeError(`breaker.resetTimeoutMs: expected a positive integer, got ${resetTimeoutMs}`);
  }
}

/** Counts against the breaker: only what the failure table calls the deployment's fault. */
function isDeploymentFault(err: unknown): boolean {
  return err instanceof UpstreamError && err.failure.deploymentFault;
}

type Circuit = CircuitBreaker<[Promise<unknown>], unknown>;

function noop(): void {}

const passThroughTicket: BreakerTicket = Object.freeze({ success: noop, failure: noop, release: noop });

export function createDeploymentBreaker(
  name: string,
  options: DeploymentBreakerOptions,
  deps: DeploymentBreakerDeps = {},
): DeploymentBreaker {
  validateBreakerOptions(options);
  const report = (state: BreakerState): void => deps.onStateChange?.(name, state);
  let shut = false;
  /** Bumped on every open: a closed-state ticket from an earlier epoch is stale and dropped. */
  let epoch = 0;

  function build(): Circuit {
    // The action only passes through the outcome promise a ticket settles.
    const c: Circuit = new CircuitBreaker((outcome: Promise<unknown>) => outcome, {
      name,
      // Sluice has its own attempt timeouts (attempt-signal.ts); opossum's would race them.
      timeout: false,
      resetTimeout: options.resetTimeoutMs,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      rollingCountTimeout: options.rollingWindowMs,
      rollingCountBuckets,
      // volumeThreshold already guards a cold start; warm-up would add a timer and a blind spot.
      allowWarmUp: false,
      // Filtered errors pass through as "answered" (opossum emits success), never as failures.
      errorFilter: (err: unknown) => !isDeploymentFault(err),
      // No latency arrays sorted on every failure, no second interval timer.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    });
    c.on("open", () => {
      epoch++;
      report("open");
    });
    c.on("halfOpen", () => report("half-open"));
    c.on("close", () => {
      // opossum keeps its window across close; a fresh instance starts clean (test: "close starts a clean window").
      const old = circuit;
      circuit = build();
      old.shutdown();
      report("closed");
    });
    return c;
  }

  let circuit = build();

  /** Feeds one finished closed-state call to opossum, unless the breaker opened since it began. */
  function record(begunIn: number, outcome: () => Promise<unknown>): void {
    if (shut || begunIn !== epoch || !circuit.closed) return;
    circuit.fire(outcome()).catch(noop);
  }

  function closedTicket(): BreakerTicket {
    const begunIn = epoch;
    let done = false;
    return {
      success() {
        if (done) return;
        done = true;
        record(begunIn, () => Promise.resolve());
      },
      failure(err) {
        if (done) return;
        done = true;
        if (err instanceof UpstreamError) record(begunIn, () => Promise.reject(err));
      },
      release() {
        done = true;
      },
    };
  }

  /** The one half-open probe: fire() now takes opossum's single pending-close slot. */
  function probeTicket(c: Circuit): BreakerTicket {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const gate = new Promise<unknown>((res, rej) => {
      resolve = () => res(undefined);
      reject = rej;
    });
    c.fire(gate).catch(noop);
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      // No evidence: back to open so a new probe goes out after resetTimeoutMs. opossum has no
      // public way to hand the slot back, and closing on a cancelled probe would be a lie.
      if (!shut && c.halfOpen) c.open();
      resolve(); // the breaker is no longer half-open, so this success does not close it
    };
    return {
      success() {
        if (done) return;
        done = true;
        resolve();
      },
      failure(err) {
        if (!(err instanceof UpstreamError)) return release();
        if (done) return;
        done = true;
        reject(err); // deploymentFault → re-open; otherwise the deployment answered → close
      },
      release,
    };
  }

  function begin(): BreakerTicket | undefined {
    if (shut) return passThroughTicket;
    if (circuit.closed) return closedTicket();
    if (circuit.halfOpen && circuit.pendingClose) return probeTicket(circuit);
    return undefined;
  }

  return {
    name,
    get state(): BreakerState {
      if (shut || circuit.closed) return "closed";
      return circuit.halfOpen ? "half-open" : "open";
    },
    isOpen() {
      if (shut) return false;
      return circuit.opened || (circuit.halfOpen && !circuit.pendingClose);
    },
    begin,
    shutdown() {
      if (shut) return;
      shut = true;
      circuit.shutdown();
    },
  };
}
