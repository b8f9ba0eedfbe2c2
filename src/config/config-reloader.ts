import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { ConfigError, parseConfigText } from "./load-config.js";
import type { SluiceConfig } from "./schema.js";

type Env = Readonly<Record<string, string | undefined>>;

/** The few logger methods the reloader writes with (pino's shape; the config layer does not import telemetry). */
export interface ReloadLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export type ReloadResult = "applied" | "rejected" | "unchanged";

export interface ConfigReloaderOptions {
  /** The configuration file (`--config`). */
  readonly file: string;
  readonly env: Env;
  readonly logger: ReloadLogger;
  /** The configuration serving now (the restart-only settings are taken from it). */
  running(): SluiceConfig;
  /** What startup does to the file's configuration before it serves (e.g. the `--listen` override). */
  prepare?(config: SluiceConfig): SluiceConfig;
  /**
   * Swaps a validated configuration in. Throwing (a ConfigError: a key file that does not
   * read, anonymous serving off loopback…) rejects it; the running one keeps serving.
   */
  apply(config: SluiceConfig): void | Promise<void>;
  /** Each reload's result (metrics), "unchanged" excluded. */
  onResult?(result: "applied" | "rejected"): void;
  /** Quiet time after the last file event before reading it (editors write in several steps). Default 150 ms. */
  readonly debounceMs?: number;
  /** How often the file is also stat'ed, for file systems whose events do not arrive (network, some containers). Default 1000 ms. */
  readonly pollMs?: number;
}

export interface ConfigReloader {
  /** Reads, validates and applies the file now (SIGHUP), even when its text is unchanged. Reloads never overlap. */
  reload(): Promise<ReloadResult>;
  /** Stops watching. */
  close(): void;
}

/**
 * Settings read once, by the listener, the server and the process: a new value takes a
 * restart. A reload keeps the running value and says so.
 */
export const restartOnlySections = ["listen", "server", "admin", "log", "telemetry"] as const;

/**
 * The new configuration with every restart-only setting as it runs now, and the changed
 * ones by path ("server.maxConcurrentCalls", "telemetry.tracing") — never a value.
 */
export function keepRestartSettings(running: SluiceConfig, next: SluiceConfig): { config: SluiceConfig; changed: string[] } {
  const changed: string[] = [];
  const config: Record<string, unknown> = { ...next };
  for (const section of restartOnlySections) {
    const was: unknown = running[section];
    const now: unknown = next[section];
    if (isDeepStrictEqual(was, now)) continue;
    changed.push(...changedPaths(section, was, now));
    config[section] = was;
  }
  return { config: config as SluiceConfig, changed };
}

function changedPaths(path: string, was: unknown, now: unknown): string[] {
  const objects = (value: unknown): value is Record<string, unknown> =>
    value !== null && typeof value === "object" && !Array.isArray(value);
  if (!objects(was) || !objects(now)) return [path];
  const keys = new Set([...Object.keys(was), ...Object.keys(now)]);
  return [...keys].filter((key) => !isDeepStrictEqual(was[key], now[key])).map((key) => `${path}.${key}`);
}

/**
 * Hot configuration reload: the file is watched — its directory, so an editor's
 * write-then-rename (a new inode) is seen, plus a periodic stat for file systems whose
 * events do not arrive — and, debounced, read, validated completely (the loader's schema
 * and every cross-field check) and handed to `apply`. A file that does not read, parse or
 * validate, or that `apply` refuses, is rejected with one error line naming the file and
 * the problem; the running configuration keeps serving. Text equal to the last read, or a
 * configuration equal to the running one, is not reloaded (a touch, a save without
 * changes, a second event of one save); `reload()` (SIGHUP) always is.
 */
export function createConfigReloader(options: ConfigReloaderOptions): ConfigReloader {
  const { file, logger } = options;
  const debounceMs = options.debounceMs ?? 150;
  const pollMs = options.pollMs ?? 1_000;
  let lastText: string | undefined;
  let lastStat: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let tail: Promise<unknown> = Promise.resolve();
  let waiting: { force: boolean; promise: Promise<ReloadResult> } | undefined;

  void statKey().then((key) => (lastStat ??= key));

  async function statKey(): Promise<string | undefined> {
    try {
      const s = await stat(file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return undefined;
    }
  }

  async function once(force: boolean): Promise<ReloadResult> {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      // Mid-rename by an editor the file may be briefly missing: the event of its return reloads it.
      if ((err as NodeJS.ErrnoException).code === "ENOENT" && !force) return "unchanged";
      return reject(
        new ConfigError(
          `cannot read configuration file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        ),
      );
    }
    if (!force && text === lastText) return "unchanged";
    lastText = text;
    let config: SluiceConfig;
    try {
      config = parseConfigText(text, options.env, file);
      if (options.prepare !== undefined) config = options.prepare(config);
    } catch (err) {
      return reject(err);
    }
    const current = options.running();
    const kept = keepRestartSettings(current, config);
    // A save that changed nothing (or only whitespace, comments): not a reload.
    if (!force && kept.changed.length === 0 && isDeepStrictEqual(kept.config, current)) return "unchanged";
    try {
      await options.apply(kept.config);
    } catch (err) {
      return reject(err);
    }
    for (const key of kept.changed) {
      logger.warn({ file, key }, "configuration setting changed but needs a restart: the running value is kept");
    }
    options.onResult?.("applied");
    return "applied";
  }

  function reject(err: unknown): ReloadResult {
    const message = err instanceof Error ? err.message : String(err);
    logger.error({ file, err: message }, "configuration reload rejected: the running configuration keeps serving");
    options.onResult?.("rejected");
    return "rejected";
  }

  /** Reloads run one at a time; requests made while one waits to start share it. */
  function request(force: boolean): Promise<ReloadResult> {
    if (waiting !== undefined) {
      waiting.force ||= force;
      return waiting.promise;
    }
    const entry = { force, promise: Promise.resolve<ReloadResult>("unchanged") };
    entry.promise = tail.then(() => {
      if (waiting === entry) waiting = undefined;
      return once(entry.force).catch(reject);
    });
    waiting = entry;
    tail = entry.promise;
    return entry.promise;
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void statKey().then((key) => {
        lastStat = key;
        return request(false);
      });
    }, debounceMs);
    timer.unref();
  }

  const name = basename(file);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name) schedule();
    });
    watcher.on("error", () => {});
  } catch {
    // No events here (the poll still sees changes).
  }
  const poll = setInterval(() => {
    void statKey().then((key) => {
      if (!closed && key !== undefined && key !== lastStat && timer === undefined) schedule();
    });
  }, pollMs);
  poll.unref();

  return {
    reload() {
      return request(true);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
