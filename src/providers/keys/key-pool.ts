import { createHash } from "node:crypto";
import { UpstreamError } from "../../errors/gateway-error.js";
import { reasons } from "../../errors/reasons.js";

/** How calls are spread over a provider's healthy keys (config `keySelection`). */
export type KeySelection = "failover" | "round-robin";

/** Why a key is out of rotation for a while. */
export type BenchReason = "refused" | "rate-limited";

/** One key as a request sees it. */
export interface PooledKey<T> {
  /** What a request with this key sends (its headers), built once per key, shared by every request. */
  readonly value: T;
  /** Names the key in logs without revealing it (`keyFingerprint`). */
  readonly fingerprint: string;
}

/** The keys of one provider and which of them may be used now. */
export interface KeyPool<T> {
  /** Keys in the pool. */
  readonly size: number;
  /**
   * The key for the next request: a healthy one (the first, or the next in turn with
   * `round-robin`), or, when every key is benched, the one whose bench ends first — a call
   * is never refused without trying.
   */
  pick(): PooledKey<T>;
  /**
   * Reports a request's failure. A failure that is the key's own — refused (401/403,
   * 402) or rate-limited (429) — benches the key; true when a healthy key is left, so the
   * request may be sent again at once with it.
   */
  failed(key: PooledKey<T>, error: unknown): boolean;
}

export interface KeyPoolOptions<T> {
  /** The keys, in order of preference; duplicates count once. At least one. */
  readonly keys: readonly string[];
  /** Builds a key's value (its headers) once. */
  readonly prepare: (key: string) => T;
  readonly selection: KeySelection;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  /** How long a refused key stays out (or until the key file changes). */
  readonly refusedBenchMs?: number;
  /** How long a rate-limited key stays out when the provider did not say (Retry-After). */
  readonly rateLimitedBenchMs?: number;
  /** A key left rotation (it was healthy): said once per bench, never per request. */
  readonly onBenched?: (fingerprint: string, reason: BenchReason, forMs: number) => void;
}

/** Long enough not to hammer a revoked key, short enough to notice one restored. */
export const defaultRefusedBenchMs = 60_000;
/** Providers nearly always send Retry-After with a 429; without it, a short pause. */
export const defaultRateLimitedBenchMs = 5_000;

/** The first 8 hex characters of the key's SHA-256: enough to tell keys apart in logs, nothing to recover one from. */
export function keyFingerprint(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

interface Slot<T> extends PooledKey<T> {
  /** 0 while healthy; else when the bench ends (`now()` ms). */
  benchedUntil: number;
  benchReason: BenchReason | undefined;
}

/** The state a reload hands to the next pool: rate-limit benches outlive a key file rewrite, refusals do not. */
export interface CarriedBenches {
  readonly rateLimitedUntil: ReadonlyMap<string, number>;
}

/**
 * A provider's keys with per-key benches. Picking costs nothing while no key is benched (no
 * clock read, no allocation); expired benches are cleared lazily when a pick looks.
 * Successes are not reported: a bench simply runs out, so the request path stays a pick.
 */
export class RotatingKeyPool<T> implements KeyPool<T> {
  readonly size: number;
  private readonly slots: Slot<T>[];
  private readonly secrets = new Map<Slot<T>, string>();
  private benched = 0;
  private cursor = 0;
  private readonly now: () => number;
  private readonly refusedBenchMs: number;
  private readonly rateLimitedBenchMs: number;
  private readonly roundRobin: boolean;
  private readonly onBenched: KeyPoolOptions<T>["onBenched"];

  constructor(options: KeyPoolOptions<T>, carried?: CarriedBenches) {
    const unique = [...new Set(options.keys)];
    if (unique.length === 0) throw new Error("a key pool needs at least one key");
    this.now = options.now;
    this.refusedBenchMs = options.refusedBenchMs ?? defaultRefusedBenchMs;
    this.rateLimitedBenchMs = options.rateLimitedBenchMs ?? defaultRateLimitedBenchMs;
    this.roundRobin = options.selection === "round-robin";
    this.onBenched = options.onBenched;
    const now = carried === undefined ? 0 : this.now();
    this.slots = unique.map((key) => {
      const until = carried?.rateLimitedUntil.get(key) ?? 0;
      const benched = until > now;
      if (benched) this.benched++;
      const slot: Slot<T> = {
        value: options.prepare(key),
        fingerprint: keyFingerprint(key),
        benchedUntil: benched ? until : 0,
        benchReason: benched ? "rate-limited" : undefined,
      };
      this.secrets.set(slot, key);
      return slot;
    });
    this.size = this.slots.length;
  }

  pick(): PooledKey<T> {
    const { slots } = this;
    if (this.benched > 0) this.expireBenches();
    if (this.benched === 0) {
      if (!this.roundRobin) return slots[0]!;
      const slot = slots[this.cursor]!;
      this.cursor = (this.cursor + 1) % slots.length;
      return slot;
    }
    if (this.benched === slots.length) return this.soonestBack();
    const start = this.roundRobin ? this.cursor : 0;
    for (let i = 0; i < slots.length; i++) {
      const index = (start + i) % slots.length;
      const slot = slots[index]!;
      if (slot.benchedUntil !== 0) continue;
      if (this.roundRobin) this.cursor = (index + 1) % slots.length;
      return slot;
    }
    return this.soonestBack();
  }

  failed(key: PooledKey<T>, error: unknown): boolean {
    const slot = key as Slot<T>;
    // A request that started before a key file reload reports on a key no longer here.
    if (!this.secrets.has(slot) || !(error instanceof UpstreamError)) return false;
    const reason = benchReasonOf(error);
    if (reason === undefined) return false;
    const forMs = reason === "refused" ? this.refusedBenchMs : (error.retryAfterMs ?? this.rateLimitedBenchMs);
    const wasHealthy = slot.benchedUntil === 0;
    slot.benchedUntil = Math.max(this.now() + forMs, 1);
    slot.benchReason = reason;
    if (wasHealthy) {
      this.benched++;
      this.onBenched?.(slot.fingerprint, reason, forMs);
    }
    return this.benched < this.slots.length;
  }

  /** What a pool built from a rewritten key file keeps: rate-limit benches of keys still there. */
  carried(): CarriedBenches {
    const rateLimitedUntil = new Map<string, number>();
    for (const slot of this.slots) {
      if (slot.benchReason === "rate-limited" && slot.benchedUntil !== 0) {
        rateLimitedUntil.set(this.secrets.get(slot)!, slot.benchedUntil);
      }
    }
    return { rateLimitedUntil };
  }

  private expireBenches(): void {
    const now = this.now();
    for (const slot of this.slots) {
      if (slot.benchedUntil !== 0 && slot.benchedUntil <= now) {
        slot.benchedUntil = 0;
        slot.benchReason = undefined;
        this.benched--;
      }
    }
  }

  private soonestBack(): Slot<T> {
    let soonest = this.slots[0]!;
    for (const slot of this.slots) if (slot.benchedUntil < soonest.benchedUntil) soonest = slot;
    return soonest;
  }
}

/** A failure that is the key's own, by the failure table's reason (the class may be a copy, see classifyHttpFailure). */
function benchReasonOf(error: UpstreamError): BenchReason | undefined {
  switch (error.failure.reason) {
    case reasons.upstreamAuth:
    case reasons.upstreamBilling:
      return "refused";
    case reasons.upstreamRateLimited:
      return "rate-limited";
    default:
      return undefined;
  }
}

/** A provider with one fixed value (one key, or none: a local server): nothing to rotate. */
export function fixedKeyPool<T>(value: T, fingerprint = ""): KeyPool<T> {
  const only: PooledKey<T> = { value, fingerprint };
  return { size: 1, pick: () => only, failed: () => false };
}

/**
 * Sends a request with the pool's key; when the key itself was refused or rate-limited and
 * another is healthy, sends it again at once with that one, each key at most once. A
 * revoked or throttled key thus costs the caller nothing while another works, without
 * spending the call's retries (the call runner never retries a refused key, and would wait
 * out a 429's Retry-After first). Anything else fails as it is, for the call runner to
 * decide. Nothing has reached the caller yet: these failures come with the answer's status.
 */
export function sendWithKey<T, R>(pool: KeyPool<T>, send: (value: T) => Promise<R>): Promise<R> {
  // One key: nothing to fail over to, and no bookkeeping on the request path.
  if (pool.size === 1) return send(pool.pick().value);
  return sendRotating(pool, send);
}

async function sendRotating<T, R>(pool: KeyPool<T>, send: (value: T) => Promise<R>): Promise<R> {
  for (let tries = 1; ; tries++) {
    const key = pool.pick();
    try {
      return await send(key.value);
    } catch (err) {
      if (!pool.failed(key, err) || tries >= pool.size) throw err;
    }
  }
}
