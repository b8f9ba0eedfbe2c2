import { ConfigError } from "../../config/load-config.js";
import type { ProviderKeySettings } from "../../config/provider-schema.js";
import type { Logger } from "../../telemetry/logger.js";
import { nodeKeyFileSystem, readKeyFileSync, watchKeyFile, type KeyFileSystem } from "./key-file.js";
import { fixedKeyPool, RotatingKeyPool, type BenchReason, type KeyPool, type KeyPoolOptions } from "./key-pool.js";

/** What a provider's keys need beyond its configuration; production passes the logger only. */
export interface ProviderKeyDeps {
  /** Reloads, unusable key files and benched keys are logged here (never a key). */
  readonly logger?: Logger | undefined;
  /** Monotonic milliseconds (benches). */
  readonly now?: () => number;
  readonly fs?: KeyFileSystem;
  /** Stat check of a key file, behind the directory watcher. */
  readonly pollMs?: number;
  /** Quiet time after a change event before the file is read. */
  readonly settleMs?: number;
}

/** A provider's key pool, live: a key file's pool is replaced when the file changes. */
export interface ProviderKeys<T> extends KeyPool<T> {
  /** Stops watching the key file. */
  close(): void;
}

/** Everything a pool is built from but its keys (a key file's reloads build new pools). */
type PoolSettings<T> = Omit<KeyPoolOptions<T>, "keys">;

const defaultPollMs = 5_000;
const defaultSettleMs = 100;

/**
 * The keys of one provider from its settings: none (a local server), `apiKey`, `apiKeys`
 * or `apiKeyFile`. `prepare` builds what a request sends for a key (its headers), once
 * per key; `undefined` when the provider has no key. A key file that cannot be read or
 * holds no key is a ConfigError naming the path — never its content.
 */
export function createProviderKeys<T>(
  provider: string,
  settings: ProviderKeySettings,
  prepare: (key: string | undefined) => T,
  deps: ProviderKeyDeps = {},
): ProviderKeys<T> {
  const { logger } = deps;
  const options: PoolSettings<T> = {
    prepare,
    selection: settings.keySelection,
    now: deps.now ?? (() => performance.now()),
    onBenched: (fingerprint: string, reason: BenchReason, forMs: number) => {
      const fields = { provider, keyFingerprint: fingerprint, benchMs: forMs };
      // A refusal means a revoked or wrong key: someone must act. A 429 is routine under load.
      if (reason === "refused") logger?.warn(fields, "provider key refused: other keys used while it is benched");
      else logger?.debug(fields, "provider key rate-limited: other keys used while it is benched");
    },
  };

  if (settings.apiKeyFile !== undefined) return fileKeys(provider, settings.apiKeyFile, options, deps);

  const keys = settings.apiKeys ?? (settings.apiKey === undefined ? [] : [settings.apiKey]);
  if (new Set(keys).size <= 1) return { ...fixedKeyPool(prepare(keys[0])), close: () => {} };
  const pool = new RotatingKeyPool({ ...options, keys });
  return { size: pool.size, pick: () => pool.pick(), failed: (key, error) => pool.failed(key, error), close: () => {} };
}

function fileKeys<T>(provider: string, path: string, options: PoolSettings<T>, deps: ProviderKeyDeps): ProviderKeys<T> {
  const fs = deps.fs ?? nodeKeyFileSystem;
  const { logger } = deps;
  const first = readKeyFileSync(path, fs);
  if ("problem" in first.content) {
    throw new ConfigError(`providers.${provider}.apiKeyFile: ${path} ${first.content.problem}`);
  }
  let loaded = first.content.keys;
  let pool = new RotatingKeyPool({ ...options, keys: loaded });
  /** An unusable rewrite is said once, until the file holds keys again. */
  let problemSaid = false;

  const watch = watchKeyFile({
    path,
    fs,
    signature: first.signature,
    pollMs: deps.pollMs ?? defaultPollMs,
    settleMs: deps.settleMs ?? defaultSettleMs,
    onKeys(keys) {
      problemSaid = false;
      if (sameKeys(keys, loaded)) {
        logger?.debug({ provider, path, keyCount: pool.size }, "provider key file re-read: same keys");
        return;
      }
      loaded = keys;
      // Requests already sent report to the old pool, harmlessly; the next one picks from this.
      pool = new RotatingKeyPool({ ...options, keys }, pool.carried());
      logger?.info({ provider, keyCount: pool.size }, "provider keys reloaded");
    },
    onProblem(problem) {
      if (problemSaid) {
        logger?.debug({ provider, path, problem }, "provider key file still unusable");
        return;
      }
      problemSaid = true;
      logger?.warn({ provider, path, problem }, "provider key file unusable: the previous keys stay in use");
    },
    onWatchFailed(reason) {
      logger?.warn(
        { provider, path, reason, pollMs: deps.pollMs ?? defaultPollMs },
        "provider key file directory cannot be watched: changes are noticed by a periodic check",
      );
    },
  });

  return {
    get size() {
      return pool.size;
    },
    pick: () => pool.pick(),
    failed: (key, error) => pool.failed(key, error),
    close: () => watch.close(),
  };
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((key, i) => key === b[i]);
}
