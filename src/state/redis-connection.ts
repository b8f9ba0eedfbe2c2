import { Redis } from "ioredis";
import type { StateConfig } from "../config/limits-schema.js";

export type RedisStateConfig = NonNullable<StateConfig["redis"]>;

/** `redis://user:secret@host` → `redis://***@host`: a URL fit for a log line. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)[^@/]*@/, "$1***@");
}

/**
 * The key base: the configured prefix as a Redis Cluster hash tag (`sluice:` → `{sluice:}`),
 * so every key of this store hashes to one slot and a multi-key script runs on a cluster too.
 * A prefix that already holds a non-empty `{tag}` is used as it is; an empty one becomes `{}`'s
 * stand-in `{sluice}` (an empty tag would hash each whole key).
 */
export function redisKeyBase(keyPrefix: string): string {
  const open = keyPrefix.indexOf("{");
  if (open >= 0 && keyPrefix.indexOf("}", open) > open + 1) return keyPrefix;
  return `{${keyPrefix === "" ? "sluice" : keyPrefix}}`;
}

/** Reconnection backoff: 50 ms, doubling, at most 2 s between attempts. */
const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** Math.max(0, attempt - 1), 2_000);

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A store's Redis connection (redis-state.ts, redis-answer-cache.ts), with the failure rules they share. */
export interface RedisConnection {
  readonly redis: Redis;
  /** The store's key base (redisKeyBase). */
  readonly base: string;
  /** The URL without its credentials, for logs and errors. */
  readonly where: string;
  /** Whether the connection was ever ready. */
  everReady(): boolean;
  /**
   * Right after start-up, waits (at most timeoutMs) for the first connection instead of
   * failing at once: without the offline queue a command sent before it is refused.
   */
  firstConnection(): Promise<void>;
  /** Quits (or drops) the connection; a wait for the first connection ends. */
  close(): Promise<void>;
}

/**
 * Opens a store's own connection: no offline queue and no retries, a command timeout of
 * `timeoutMs` (a caller fails fast while Redis is unreachable or slow); it comes back by
 * itself (backoff 50 ms → 2 s). Commands issued in the same tick (concurrent calls'
 * admissions, settlements, ledger lines) go out as one write and come back as one read:
 * fewer syscalls per call under load.
 */
export function connectRedis(config: RedisStateConfig): RedisConnection {
  const redis = new Redis(config.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.timeoutMs,
    connectTimeout: Math.max(1_000, 4 * config.timeoutMs),
    retryStrategy: reconnectDelay,
    lazyConnect: false,
    enableAutoPipelining: true,
  });
  let everReady = false;
  let closing = false;
  let resolveFirstReady: () => void = () => {};
  const firstReady = new Promise<void>((resolve) => (resolveFirstReady = resolve));
  redis.on("ready", () => {
    everReady = true;
    resolveFirstReady();
  });
  // The stores watch errors as they need; without a listener ioredis would print each one.
  redis.on("error", () => {});

  return {
    redis,
    base: redisKeyBase(config.keyPrefix),
    where: redactRedisUrl(config.url),
    everReady: () => everReady,
    async firstConnection() {
      if (everReady || closing) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([firstReady, new Promise<void>((resolve) => (timer = setTimeout(resolve, config.timeoutMs)))]);
      clearTimeout(timer);
    },
    async close() {
      closing = true;
      resolveFirstReady();
      if (redis.status === "ready") {
        try {
          await redis.quit();
          return;
        } catch {
          // Fall through: drop the connection.
        }
      }
      redis.disconnect();
    },
  };
}
