import {
  createDeploymentBreaker,
  validateBreakerOptions,
  type BreakerState,
  type DeploymentBreaker,
  type DeploymentBreakerDeps,
  type DeploymentBreakerOptions,
} from "./deployment-breaker.js";

/**
 * One circuit breaker per deployment key ("provider/model", as the model catalog names
 * deployments), created on first use: configs may list many deployments that never see
 * traffic, and an idle breaker would still hold a (unref'd) rotation timer.
 */
export interface BreakerRegistry {
  /** The breaker of one deployment, created lazily with the registry's options. */
  get(deploymentKey: string): DeploymentBreaker;
  /** State of every breaker created so far (metrics: breaker state). */
  states(): Record<string, BreakerState>;
  /**
   * A configuration reload: the breakers of deployments not in `keys` are shut down and
   * dropped; the others keep their state.
   */
  retain(keys: ReadonlySet<string>): void;
  /** Shuts every breaker down (no timers left). Later `get()`s answer pass-through breakers. */
  shutdown(): void;
}

export function createBreakerRegistry(options: DeploymentBreakerOptions, deps: DeploymentBreakerDeps = {}): BreakerRegistry {
  // Fail at startup, not at a deployment's first request.
  validateBreakerOptions(options);
  const breakers = new Map<string, DeploymentBreaker>();
  let shut = false;

  return {
    get(deploymentKey) {
      let breaker = breakers.get(deploymentKey);
      if (breaker === undefined) {
        breaker = createDeploymentBreaker(deploymentKey, options, deps);
        // Requests still draining after shutdown pass through; nothing new is kept or timed.
        if (shut) breaker.shutdown();
        else breakers.set(deploymentKey, breaker);
      }
      return breaker;
    },
    states() {
      const states: Record<string, BreakerState> = {};
      for (const [key, breaker] of breakers) states[key] = breaker.state;
      return states;
    },
    retain(keys) {
      for (const [key, breaker] of breakers) {
        if (keys.has(key)) continue;
        breaker.shutdown();
        breakers.delete(key);
      }
    },
    shutdown() {
      shut = true;
      for (const breaker of breakers.values()) breaker.shutdown();
    },
  };
}
