import type { SluiceConfig } from "../config/schema.js";
import { type AnswerCache, createMemoryAnswerCache } from "../state/answer-cache.js";
import { createRedisAnswerCache } from "../state/redis-answer-cache.js";
import type { StateStore } from "../state/state-store.js";
import type { Logger } from "../telemetry/logger.js";

/** One answer store per state store: a configuration reload that keeps the state keeps the cache too. */
const stores = new WeakMap<StateStore, AnswerCache>();

/**
 * The store of cached answers and idempotency records that goes with `state`: Redis (shared
 * by replicas) when `state.redis` is set, else this process's LRU (sized by `cache`, or the
 * defaults when only idempotency keys use it). Built once per state store.
 */
export function answerStoreFor(
  state: StateStore,
  config: Pick<SluiceConfig, "state" | "cache" | "idempotency">,
  logger: Logger,
): AnswerCache {
  let store = stores.get(state);
  if (store === undefined) {
    store =
      config.state.redis !== undefined
        ? createRedisAnswerCache(config.state.redis, { logger })
        : createMemoryAnswerCache({
            maxEntries: config.cache?.maxEntries ?? 10_000,
            maxBytes: config.cache?.maxBytes ?? 64 * 1024 * 1024,
            maxRecords: config.idempotency.maxEntries,
          });
    stores.set(state, store);
  }
  return store;
}

/** Closes the answer store of `state` (when it is closed). */
export async function closeAnswerStore(state: StateStore): Promise<void> {
  const store = stores.get(state);
  stores.delete(state);
  await store?.close();
}
