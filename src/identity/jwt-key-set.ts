import { type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { createLocalJWKSet, createRemoteJWKSet, type JWTVerifyGetKey } from "jose";
import { ConfigError } from "../config/load-config.js";
import type { JwtConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";

/** Where the keys that verify JWTs come from (`auth.jwt.jwksFile` or `jwksUrl`). */
export interface JwtKeySet {
  /** What `jwtVerify` asks for a token's key: chosen by the token's `kid` among keys of an allowed `alg`. */
  readonly getKey: JWTVerifyGetKey;
  /**
   * JWKS file: re-reads it now if it changed since the last read (the watcher and the timer
   * call this; so can a test). True when new keys were taken. JWKS URL: always false (jose
   * refetches on its own).
   */
  check(): boolean;
  /** Stops watching the file. */
  close(): void;
}

export interface JwtKeySetDeps {
  /** Told when the file's keys were replaced: what was verified with the old ones must be checked again. */
  readonly onChange?: () => void;
  /** Where a JWKS file that no longer reads is reported (the previous keys stay in use). */
  readonly logger?: Logger;
}

export function createJwtKeySet(config: JwtConfig, deps: JwtKeySetDeps = {}): JwtKeySet {
  if (config.jwksUrl !== undefined) {
    // jose caches the set for `cacheMaxAge`, picks the key by `kid`, and on an unknown
    // `kid` refetches (at most once per `cooldownDuration`): a rotated-in key is found
    // without a restart. Redirects are not followed.
    const getKey = createRemoteJWKSet(new URL(config.jwksUrl), {
      cacheMaxAge: config.refreshMs,
      cooldownDuration: config.cooldownMs,
      timeoutDuration: 5_000,
    });
    return { getKey, check: () => false, close() {} };
  }
  return createJwksFile(config.jwksFile!, config.refreshMs, deps);
}

/** A file's identity for "has it changed": inode (a rename over it), size and modification time. */
function stampOf(path: string): string {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats === undefined ? "missing" : `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
  } catch {
    return "unreadable";
  }
}

/** The file's keys, or why they cannot be used (never the file's text: only what is wrong with it). */
function readJwks(path: string): JWTVerifyGetKey | string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`;
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return "is not JSON";
  }
  try {
    return createLocalJWKSet(document as Parameters<typeof createLocalJWKSet>[0]);
  } catch {
    return 'is not a JWKS (expected { "keys": [ … ] })';
  }
}

/**
 * A JWKS file, re-read when it changes. The directory is watched rather than the file, so
 * a file replaced by rename (how keys are rotated atomically, and how editors save) is
 * still seen; a timer re-checks every `refreshMs` where watching misses events (network
 * file systems). A file that stops reading keeps the previous keys, with a warning. Both
 * are unref'd: they never keep the process alive.
 */
function createJwksFile(path: string, refreshMs: number, deps: JwtKeySetDeps): JwtKeySet {
  const first = readJwks(path);
  if (typeof first === "string") throw new ConfigError(`auth.jwt.jwksFile: ${path} ${first}`);
  let current = first;
  let seenStamp = stampOf(path);

  function check(): boolean {
    const now = stampOf(path);
    if (now === seenStamp) return false;
    seenStamp = now;
    const next = readJwks(path);
    if (typeof next === "string") {
      deps.logger?.warn({ path }, `JWKS file ${next}; keeping the keys read before`);
      return false;
    }
    current = next;
    deps.onChange?.();
    deps.logger?.info({ path }, "JWKS file reloaded");
    return true;
  }

  const file = basename(path);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      // Some platforms give no name: check anyway, a stat is cheap.
      if (name === null || name === file) check();
    });
    watcher.on("error", () => watcher?.close());
  } catch {
    watcher = undefined; // the timer alone then
  }
  const timer = setInterval(check, refreshMs);
  timer.unref();

  return {
    getKey: (header, token) => current(header, token),
    check,
    close() {
      clearInterval(timer);
      watcher?.close();
    },
  };
}
