import { z } from "zod";

/**
 * The response cache (`cache`): present, it is on for deterministic requests (temperature 0
 * or a seed) and for calls that opt in (`CompleteRequest.cache.enabled`, the
 * `x-sluice-cache: on` header); identical such calls in flight share one upstream call
 * (coalescing). Absent: no cache, no coalescing. In this process (an LRU) or, with
 * `state.redis`, in Redis shared by every replica.
 */
export const cacheSchema = z
  .object({
    /** How long an answer is served from the cache. */
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400)
      .default(300),
    /** In-process cache: at most this many answers (least recently used leave first). */
    maxEntries: z.number().int().min(1).max(10_000_000).default(10_000),
    /** In-process cache: at most this many bytes of answers (their text, approximately). */
    maxBytes: z
      .number()
      .int()
      .min(1_024)
      .default(64 * 1024 * 1024),
    /** An answer larger than this (bytes) is not stored. */
    maxEntryBytes: z
      .number()
      .int()
      .min(1_024)
      .default(1024 * 1024),
    /**
     * A coalesced stream: events a waiter may fall behind the fastest one before it fails
     * (RESOURCE_EXHAUSTED, COALESCED_STREAM_LAGGING). When every waiter is that far behind,
     * the upstream stream waits instead.
     */
    streamLagEvents: z.number().int().min(16).max(1_000_000).default(1_024),
  })
  .strict();

/** Idempotency keys (`idempotency-key` header or `CompleteRequest.idempotency_key`): always on. */
export const idempotencySchema = z
  .object({
    /** How long a finished call's answer is returned for a repeat of its key. */
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(86_400),
    /** How long a call in progress holds its key (a replica that dies mid-call frees it after this). */
    pendingSeconds: z.number().int().min(1).max(86_400).default(600),
    /** In-process records: at most this many (least recently used leave first). */
    maxEntries: z.number().int().min(1).max(10_000_000).default(100_000),
  })
  .strict();

export type CacheConfig = z.output<typeof cacheSchema>;
export type IdempotencyConfig = z.output<typeof idempotencySchema>;
