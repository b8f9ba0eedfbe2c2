/**
 * Per-deployment concurrency limits (`maxInFlight`): a deployment at its limit is skipped
 * like one whose breaker is open, so a self-hosted server (vLLM, Ollama) is never pushed
 * past what it can serve and the call fails over instead of queueing upstream.
 *
 * Counts are per deployment key ("provider/model"), so every alias sharing a deployment
 * shares its count; each alias enforces the limit it configured.
 */
export interface InFlightLimiter {
  /** Takes a slot on `key` when below `limit` (undefined = unlimited); false when full. */
  tryAcquire(key: string, limit: number | undefined): boolean;
  /** Gives back a slot taken with `tryAcquire` (exactly once per successful acquire). */
  release(key: string, limit: number | undefined): void;
  /** In-flight attempts per limited deployment (health and metrics). */
  counts(): Record<string, number>;
  /** A configuration reload: drops idle counts of deployments not in `keys` (busy ones are released as usual). */
  retain(keys: ReadonlySet<string>): void;
}

export function createInFlightLimiter(): InFlightLimiter {
  const inFlight = new Map<string, number>();
  return {
    tryAcquire(key, limit) {
      // Unlimited deployments are not counted: nothing to enforce, no work per call.
      if (limit === undefined) return true;
      const current = inFlight.get(key) ?? 0;
      if (current >= limit) return false;
      inFlight.set(key, current + 1);
      return true;
    },
    release(key, limit) {
      if (limit === undefined) return;
      const current = inFlight.get(key) ?? 0;
      if (current <= 0) throw new Error(`in-flight limiter: release without acquire on ${key}`);
      inFlight.set(key, current - 1);
    },
    counts() {
      return Object.fromEntries(inFlight);
    },
    retain(keys) {
      for (const [key, count] of inFlight) if (count === 0 && !keys.has(key)) inFlight.delete(key);
    },
  };
}
