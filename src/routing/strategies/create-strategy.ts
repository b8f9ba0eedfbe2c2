import { createLeastLatencyStrategy } from "./least-latency.js";
import { createOrderedStrategy } from "./ordered.js";
import { createPowerOfTwoChoicesStrategy } from "./power-of-two-choices.js";
import { createRoundRobinStrategy } from "./round-robin.js";
import { createStickyStrategy } from "./sticky.js";
import type { Clock, RandomSource, SelectionStrategy } from "./strategy.js";
import { createWeightedRandomStrategy } from "./weighted-random.js";

export type StrategyType = "ordered" | "weighted" | "round-robin" | "least-latency" | "p2c" | "sticky";

export interface StrategyConfig {
  readonly type: StrategyType;
  /** `sticky`: the metadata key whose value pins a caller to a deployment (required). */
  readonly stickyKey?: string;
  /** `least-latency`: EWMA weight of the newest sample, in (0, 1]; default 0.3. */
  readonly ewmaAlpha?: number;
}

export interface StrategyDeps {
  /** Uniform in [0, 1); default Math.random. */
  readonly random?: RandomSource;
  /** Monotonic ms; default performance.now. */
  readonly now?: Clock;
}

/**
 * Builds one strategy instance — create one per model alias, since strategies keep
 * per-instance state (round-robin position, latency estimates, in-flight counts).
 * Options are checked here, at build time: a bad one fails startup, never a request.
 * `ordered` (configured order) is accepted too, so a config's `strategy` passes straight in.
 */
export function createStrategy(config: StrategyConfig, deps: StrategyDeps = {}): SelectionStrategy {
  const random = deps.random === undefined ? {} : { random: deps.random };
  switch (config.type) {
    case "ordered":
      return createOrderedStrategy();
    case "weighted":
      return createWeightedRandomStrategy(random);
    case "round-robin":
      return createRoundRobinStrategy();
    case "least-latency":
      return createLeastLatencyStrategy(
        config.ewmaAlpha === undefined ? {} : { ewmaAlpha: config.ewmaAlpha },
        deps.now === undefined ? {} : { now: deps.now },
      );
    case "p2c":
      return createPowerOfTwoChoicesStrategy(random);
    case "sticky":
      if (config.stickyKey === undefined) throw new Error('strategy "sticky" needs stickyKey (e.g. "end_user")');
      return createStickyStrategy({ stickyKey: config.stickyKey }, random);
    default: {
      const unknown: never = config.type;
      throw new Error(`unknown strategy type: ${String(unknown)}`);
    }
  }
}
