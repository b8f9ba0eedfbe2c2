import { LRUCache } from "lru-cache";
import type { CompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";

/**
 * Where the response cache and the idempotency records live (issue 16): one interface, in
 * this process (`createMemoryAnswerCache`, an LRU) or in Redis shared by replicas
 * (redis-answer-cache.ts). Keys are the cache layer's hashes; every entry is namespaced by
 * tenant and tagged with its end user, so a purge finds a tenant's or one user's entries.
 */

/** Whose an entry is: the tenant, and a hash of the end user ("-" when none). */
export interface CacheScope {
  readonly tenant: string;
  readonly user: string;
}

/** A stored answer and when it was stored (epoch ms). */
export interface CachedAnswer {
  readonly response: CompleteResponse;
  readonly storedAt: number;
}

/** What claiming an idempotency key found. */
export type IdempotencyClaim =
  /** The key is now this call's (pending until `complete` or `release`). */
  | { readonly kind: "claimed" }
  /** Another call holds it and has not finished; `fingerprint`: its request's hash. */
  | { readonly kind: "pending"; readonly fingerprint: string }
  /** A finished call's answer. */
  | { readonly kind: "done"; readonly fingerprint: string; readonly response: CompleteResponse };

export interface PurgeCount {
  readonly entries: number;
  readonly records: number;
}

export interface AnswerCache {
  readonly backend: "memory" | "redis";
  get(scope: CacheScope, key: string): CachedAnswer | undefined | Promise<CachedAnswer | undefined>;
  /** Stores an answer for `ttlMs` (`size`: its approximate bytes). Never rejects. */
  set(scope: CacheScope, key: string, response: CompleteResponse, size: number, ttlMs: number, now: number): void | Promise<void>;
  /** Claims `key` for a call whose request hashes to `fingerprint`, pending for `pendingMs`. */
  claim(scope: CacheScope, key: string, fingerprint: string, pendingMs: number): IdempotencyClaim | Promise<IdempotencyClaim>;
  /** The claimed call finished: its answer is returned for the key for `ttlMs`. Never rejects. */
  complete(scope: CacheScope, key: string, fingerprint: string, response: CompleteResponse, ttlMs: number): void | Promise<void>;
  /** The claimed call failed: the key is free again (a retry runs). Never rejects. */
  release(scope: CacheScope, key: string, fingerprint: string): void | Promise<void>;
  /** Deletes a tenant's entries and records (or one end user's: `user` is its hash). */
  purge(tenant: string, user: string | undefined): Promise<PurgeCount>;
  close(): Promise<void>;
}

export interface MemoryAnswerCacheOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxRecords: number;
}

interface MemoryEntry extends CachedAnswer {
  readonly tenant: string;
  readonly user: string;
  readonly size: number;
}

interface MemoryRecord {
  readonly tenant: string;
  readonly user: string;
  readonly fingerprint: string;
  response: CompleteResponse | undefined;
}

/**
 * The in-process backend: answers as objects in an LRU bounded by entries and bytes (no
 * serialisation: a hit costs a lookup), idempotency records in another. Expired entries
 * are dropped when read (lru-cache's lazy TTL).
 */
export function createMemoryAnswerCache(options: MemoryAnswerCacheOptions): AnswerCache {
  const answers = new LRUCache<string, MemoryEntry>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: (entry) => Math.max(1, entry.size),
  });
  const records = new LRUCache<string, MemoryRecord>({ max: options.maxRecords });
  const answerKey = (scope: CacheScope, key: string) => `${scope.tenant}\0${key}`;
  const recordKey = (scope: CacheScope, key: string) => `${scope.tenant}\0${key}`;
  return {
    backend: "memory",
    get(scope, key) {
      return answers.get(answerKey(scope, key));
    },
    set(scope, key, response, size, ttlMs, now) {
      if (size > options.maxBytes) return;
      answers.set(
        answerKey(scope, key),
        { response, storedAt: now, tenant: scope.tenant, user: scope.user, size },
        { ttl: ttlMs },
      );
    },
    claim(scope, key, fingerprint, pendingMs) {
      const found = records.get(recordKey(scope, key));
      if (found === undefined) {
        records.set(
          recordKey(scope, key),
          { tenant: scope.tenant, user: scope.user, fingerprint, response: undefined },
          { ttl: pendingMs },
        );
        return { kind: "claimed" };
      }
      if (found.response === undefined) return { kind: "pending", fingerprint: found.fingerprint };
      return { kind: "done", fingerprint: found.fingerprint, response: found.response };
    },
    complete(scope, key, fingerprint, response, ttlMs) {
      // Only while the claim is still this call's, as in Redis: a purge (or the pending TTL) may have removed it.
      if (records.peek(recordKey(scope, key))?.fingerprint !== fingerprint) return;
      records.set(recordKey(scope, key), { tenant: scope.tenant, user: scope.user, fingerprint, response }, { ttl: ttlMs });
    },
    release(scope, key, fingerprint) {
      const found = records.peek(recordKey(scope, key));
      if (found !== undefined && found.fingerprint === fingerprint && found.response === undefined)
        records.delete(recordKey(scope, key));
    },
    async purge(tenant, user) {
      const matches = (entry: { tenant: string; user: string }) =>
        entry.tenant === tenant && (user === undefined || entry.user === user);
      let entries = 0;
      let recordsDeleted = 0;
      for (const [key, entry] of answers.entries()) {
        if (matches(entry)) {
          answers.delete(key);
          entries++;
        }
      }
      for (const [key, record] of records.entries()) {
        if (matches(record)) {
          records.delete(key);
          recordsDeleted++;
        }
      }
      return { entries, records: recordsDeleted };
    },
    async close() {
      answers.clear();
      records.clear();
    },
  };
}
