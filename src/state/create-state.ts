import type { StateConfig } from "../config/limits-schema.js";
import type { Logger } from "../telemetry/logger.js";
import { createMemoryState } from "./memory-state.js";
import { createRedisState } from "./redis-state.js";
import type { StateStore } from "./state-store.js";

export interface StateDeps {
  readonly logger: Logger;
  /** A settle, renew or usage record the backend did not take (Redis only). */
  readonly onError?: (operation: string, err: unknown) => void;
}

/** The state store `state` configures: Redis shared by replicas when `state.redis` is set, else this process. */
export function createStateStore(config: StateConfig, deps: StateDeps): StateStore {
  if (config.redis !== undefined) {
    return createRedisState(
      config.redis,
      deps.onError === undefined ? { logger: deps.logger } : { logger: deps.logger, onError: deps.onError },
    );
  }
  return createMemoryState();
}
