import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  CacheStatus,
  type CompleteRequest,
  type CompleteResponse,
  type RouteInfo,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { CacheConfig, IdempotencyConfig } from "../config/cache-schema.js";
import { invalidArgument } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import type { AnswerCache, CacheScope, IdempotencyClaim } from "../state/answer-cache.js";
import { StateUnavailableError } from "../state/state-store.js";
import type { CallRecord } from "../telemetry/call-record.js";
import { callRecordKey } from "../telemetry/call-record.js";
import { AnswerAccumulator, answerSize, replayEvents } from "./answer-events.js";
import { type FlightSource, StreamFlight, UnaryFlight } from "./flights.js";
import { endUserOf, idempotencyTag, isDeterministic, requestKey, userTag } from "./request-key.js";

export type CacheResult = "hit" | "miss" | "coalesced" | "bypass";

/** What the cache hears (metrics: `sluice_cache_requests_total{alias,result}`). */
export interface CacheObserver {
  result(alias: string, result: CacheResult): void;
}

export interface CallCacheDeps {
  /** `cache`; absent: no response cache and no coalescing (idempotency keys still work). */
  readonly config: CacheConfig | undefined;
  readonly idempotency: IdempotencyConfig;
  readonly store: AnswerCache;
  /** Redis unreachable while claiming an idempotency key: `open` serves the call without it, `closed` refuses. */
  readonly failOpen: boolean;
  readonly observer?: CacheObserver;
  readonly now?: () => number;
}

/** How one call uses the cache, decided once the alias is resolved. */
export interface CachePlan {
  readonly tenant: string;
  readonly alias: string;
  readonly scope: CacheScope;
  /** The request's hash (cache key and idempotency fingerprint). */
  readonly key: string;
  /** Read and write the response cache, coalesce. */
  readonly cached: boolean;
  readonly bypass: boolean;
  readonly noStore: boolean;
  readonly maxAgeMs: number;
  /** The idempotency key's hash, when one was sent. */
  readonly idempotencyKey: string | undefined;
}

/** The upstream call (the runner), given the flight's context: its signal and headers are the flight's. */
export type RunUnary = (context: HandlerContext) => Promise<CompleteResponse>;
export type RunStream = (context: HandlerContext) => AsyncIterable<StreamCompleteResponse>;

export interface CallCache {
  /** Undefined when the call neither is cacheable nor carries an idempotency key: the plain path, untouched. */
  plan(request: CompleteRequest, alias: string, tenant: string, context: HandlerContext): CachePlan | undefined;
  complete(plan: CachePlan, context: HandlerContext, run: RunUnary): Promise<CompleteResponse>;
  stream(plan: CachePlan, context: HandlerContext, run: RunStream): AsyncIterable<StreamCompleteResponse>;
}

const statusOf: Record<CacheResult, CacheStatus> = {
  hit: CacheStatus.HIT,
  miss: CacheStatus.MISS,
  coalesced: CacheStatus.COALESCED,
  bypass: CacheStatus.BYPASS,
};

/** Idempotency keys longer than this are refused (a key is a caller's id, not data). */
const maxIdempotencyKey = 256;
/** Waiting on a key another replica holds: first poll after this, doubling to 500 ms. */
const pollStartMs = 25;

/**
 * The response cache, coalescing and idempotency keys (issue 16), between admission and
 * the call runner. A call takes this path only when the gateway has a `cache` and the
 * request is deterministic (or opts in), or when it carries an idempotency key; every
 * other call costs the chat service one branch.
 *
 * Identical calls in flight (same tenant, same hash, same RPC) share one *flight*: the first
 * starts it, later ones join. A flight first looks in the store (an idempotency record, then
 * the cache), and only on a miss calls upstream; its answer is stored for the next callers.
 */
export function createCallCache(deps: CallCacheDeps): CallCache {
  const { config, store, observer } = deps;
  const now = deps.now ?? Date.now;
  const ttlMs = (config?.ttlSeconds ?? 0) * 1000;
  const recordTtlMs = deps.idempotency.ttlSeconds * 1000;
  const pendingMs = deps.idempotency.pendingSeconds * 1000;
  const unaryFlights = new Map<string, UnaryFlight<{ response: CompleteResponse; source: FlightSource; header: Headers }>>();
  const streamFlights = new Map<string, { flight: StreamFlight; context: HandlerContext }>();

  function idempotencyKeyOf(request: CompleteRequest, context: HandlerContext): string | undefined {
    const key = context.requestHeader.get("idempotency-key") ?? request.idempotencyKey;
    if (key === "") return undefined;
    if (key.length > maxIdempotencyKey) {
      throw invalidArgument([
        { field: "idempotency_key", reason: reasons.invalidField, description: `at most ${maxIdempotencyKey} characters` },
      ]);
    }
    return key;
  }

  function reused(): ConnectError {
    return invalidArgument([
      {
        field: "idempotency_key",
        reason: reasons.idempotencyKeyReused,
        description: "this idempotency key was used with a different request; use a new key for a new request",
      },
    ]);
  }

  function flightKey(plan: CachePlan): string {
    return plan.idempotencyKey !== undefined ? `i\0${plan.tenant}\0${plan.idempotencyKey}` : `c\0${plan.tenant}\0${plan.key}`;
  }

  /** The flight's context: the first caller's (its call record gets the route), with the flight's signal and headers. */
  function flightContext(context: HandlerContext, signal: AbortSignal): HandlerContext {
    return Object.create(context, {
      signal: { value: signal },
      responseHeader: { value: new Headers() },
      responseTrailer: { value: new Headers() },
    }) as HandlerContext;
  }

  /** The stored answer for a plan, if any: an idempotency record's or the cache's. Claims the idempotency key on a miss. */
  async function lookup(plan: CachePlan, signal: AbortSignal): Promise<CompleteResponse | undefined> {
    if (plan.idempotencyKey !== undefined) {
      for (let delay = pollStartMs; ; delay = Math.min(500, delay * 2)) {
        let claim: IdempotencyClaim;
        try {
          claim = await store.claim(plan.scope, plan.idempotencyKey, plan.key, pendingMs);
        } catch (err) {
          if (!(err instanceof StateUnavailableError) || !deps.failOpen) {
            if (err instanceof StateUnavailableError) {
              throw new ConnectError(
                "idempotency records unavailable: the state store did not answer; retry shortly",
                Code.Unavailable,
              );
            }
            throw err;
          }
          break; // fail open: the call runs without its key
        }
        if (claim.kind === "claimed") break;
        if (claim.fingerprint !== plan.key) throw reused();
        if (claim.kind === "done") return claim.response;
        // Another replica runs it: wait for its answer (or for its key to be freed).
        await sleep(delay, signal);
      }
    }
    if (!plan.cached || plan.bypass) return undefined;
    const found = await store.get(plan.scope, plan.key);
    if (found === undefined) return undefined;
    if (plan.maxAgeMs > 0 && now() - found.storedAt > plan.maxAgeMs) return undefined;
    if (plan.idempotencyKey !== undefined)
      void store.complete(plan.scope, plan.idempotencyKey, plan.key, found.response, recordTtlMs);
    return found.response;
  }

  /** A finished upstream answer: into the cache and the idempotency record. */
  function keep(plan: CachePlan, response: CompleteResponse, size: number): void {
    if (plan.cached && !plan.noStore && size <= (config?.maxEntryBytes ?? 0)) {
      void store.set(plan.scope, plan.key, response, size, ttlMs, now());
    }
    if (plan.idempotencyKey !== undefined) void store.complete(plan.scope, plan.idempotencyKey, plan.key, response, recordTtlMs);
  }

  function failed(plan: CachePlan): void {
    if (plan.idempotencyKey !== undefined) void store.release(plan.scope, plan.idempotencyKey, plan.key);
  }

  /**
   * The flight's upstream call reports its route and usage into its first caller's call
   * record (the flight's context is that caller's), and that record's `onEnd` is where
   * admission settles the reservations and writes the usage ledger. A first caller may
   * leave while the others still wait for the upstream call: its `onEnd` then waits for the
   * upstream call to end, so the call's usage and cost are recorded once, in full — not cut
   * to what the first caller had received when it left.
   */
  function settleWhenOver(record: CallRecord | undefined, over: Promise<unknown>): void {
    const onEnd = record?.onEnd;
    if (record === undefined || onEnd === undefined) return;
    let ended = false;
    const settled = over.then(
      () => (ended = true),
      () => (ended = true),
    );
    record.onEnd = (ending, failed) => {
      if (ended) onEnd(ending, failed);
      else void settled.then(() => onEnd(ending, failed));
    };
  }

  function served(plan: CachePlan, result: CacheResult, record: CallRecord | undefined, header: Headers): void {
    header.set("sluice-cache", result);
    if (record !== undefined) record.cacheStatus = result;
    observer?.result(plan.alias, result);
  }

  function withStatus(route: RouteInfo | undefined, result: CacheResult): RouteInfo {
    return {
      $typeName: "sluice.v1.RouteInfo",
      provider: route?.provider ?? "",
      upstreamModel: route?.upstreamModel ?? "",
      attempts: result === "miss" || result === "bypass" ? (route?.attempts ?? 0) : 0,
      fallbackModel: route?.fallbackModel ?? "",
      degraded: route?.degraded ?? false,
      hedged: route?.hedged ?? false,
      cacheStatus: statusOf[result],
    };
  }

  return {
    plan(request, alias, tenant, context) {
      const idempotencyKey = idempotencyKeyOf(request, context);
      const control = request.cache;
      let cached = false;
      // Read once: it decides here and again below (bypass, no-store).
      const header = config === undefined ? null : context.requestHeader.get("x-sluice-cache");
      if (config !== undefined) {
        cached = isDeterministic(request) || control?.enabled === true || header === "on";
        if (header === "off") cached = false;
      }
      if (!cached && idempotencyKey === undefined) return undefined;
      const maxAge = control?.maxAgeSeconds || Number(context.requestHeader.get("x-sluice-cache-max-age") ?? 0) || 0;
      return {
        tenant,
        alias,
        scope: { tenant, user: userTag(endUserOf(request)) },
        key: requestKey(request, alias),
        cached,
        bypass: control?.bypass === true || header === "bypass",
        noStore: control?.noStore === true || header === "no-store",
        maxAgeMs: maxAge > 0 ? maxAge * 1000 : 0,
        idempotencyKey: idempotencyKey === undefined ? undefined : idempotencyTag(idempotencyKey),
      };
    },

    async complete(plan, context, run) {
      const record = context.values.get(callRecordKey);
      const key = flightKey(plan);
      let flight = plan.bypass && plan.idempotencyKey === undefined ? undefined : unaryFlights.get(key);
      let origin = false;
      if (flight === undefined) {
        origin = true;
        const created = new UnaryFlight(async (signal) => {
          const stored = await lookup(plan, signal);
          if (stored !== undefined) return { response: stored, source: "hit" as const, header: new Headers() };
          const flightCtx = flightContext(context, signal);
          try {
            const response = await run(flightCtx);
            keep(plan, response, answerSize(response));
            return { response, source: plan.bypass ? ("bypass" as const) : ("miss" as const), header: flightCtx.responseHeader };
          } catch (err) {
            failed(plan);
            throw err;
          }
        });
        flight = created;
        settleWhenOver(record, created.result);
        if (!plan.bypass || plan.idempotencyKey !== undefined) {
          unaryFlights.set(key, created);
          created.result.then(
            () => unaryFlights.get(key) === created && unaryFlights.delete(key),
            () => unaryFlights.get(key) === created && unaryFlights.delete(key),
          );
        }
      }
      if (!origin) {
        const owner = flightPlans.get(flight);
        if (owner !== undefined && plan.idempotencyKey !== undefined && owner.key !== plan.key) throw reused();
      } else flightPlans.set(flight, plan);
      const { response, source, header } = await flight.join(context.signal);
      const result: CacheResult = origin ? source : source === "hit" ? "hit" : "coalesced";
      if (origin && source !== "hit") for (const [name, value] of header) context.responseHeader.set(name, value);
      served(plan, result, record, context.responseHeader);
      return { ...response, route: withStatus(response.route, result) };
    },

    stream(plan, context, run) {
      const record = context.values.get(callRecordKey);
      const key = flightKey(plan);
      let entry = plan.bypass && plan.idempotencyKey === undefined ? undefined : streamFlights.get(key);
      let origin = false;
      if (entry !== undefined && (entry.flight.finished || entry.flight.controller.signal.aborted)) entry = undefined;
      if (entry === undefined) {
        origin = true;
        let flightCtx: HandlerContext | undefined;
        const flight: StreamFlight = new StreamFlight(config?.streamLagEvents ?? 1_024, (signal) =>
          (async function* produce(): AsyncGenerator<StreamCompleteResponse> {
            try {
              const stored = await lookup(plan, signal);
              if (stored !== undefined) {
                flight.source = "hit";
                yield* replayEvents(stored, stored.route ?? withStatus(undefined, "hit"));
                return;
              }
              flight.source = plan.bypass ? "bypass" : "miss";
              flightCtx = flightContext(context, signal);
              const answer = new AnswerAccumulator();
              let finished = false;
              try {
                for await (const event of run(flightCtx)) {
                  const whole = answer.add(event);
                  if (whole !== undefined) {
                    finished = true;
                    keep(plan, whole, answer.size + 256);
                  }
                  yield event;
                }
              } finally {
                if (!finished) failed(plan);
              }
            } finally {
              if (streamFlights.get(key)?.flight === flight) streamFlights.delete(key);
            }
          })(),
        );
        entry = { flight, context };
        settleWhenOver(record, flight.done);
        flightPlans.set(flight, plan);
        if (!plan.bypass || plan.idempotencyKey !== undefined) streamFlights.set(key, entry);
        const current = entry;
        return relay(plan, context, record, current.flight, true, () => flightCtx);
      }
      const owner = flightPlans.get(entry.flight);
      if (owner !== undefined && plan.idempotencyKey !== undefined && owner.key !== plan.key) throw reused();
      return relay(plan, context, record, entry.flight, origin, () => undefined);
    },
  };

  /** One caller's view of a stream flight: its events, `done` with this caller's cache status. */
  async function* relay(
    plan: CachePlan,
    context: HandlerContext,
    record: CallRecord | undefined,
    flight: StreamFlight,
    origin: boolean,
    upstreamContext: () => HandlerContext | undefined,
  ): AsyncGenerator<StreamCompleteResponse> {
    const reader = flight.join(context.signal);
    let result: CacheResult | undefined;
    try {
      for (;;) {
        const next = await reader.next();
        if (next.done) return;
        const event = next.value;
        if (result === undefined) {
          result = origin ? flight.source : flight.source === "hit" ? "hit" : "coalesced";
          served(plan, result, record, context.responseHeader);
        }
        if (event.event.case === "done") {
          const trailer = upstreamContext()?.responseTrailer;
          if (trailer !== undefined && origin) for (const [name, value] of trailer) context.responseTrailer.set(name, value);
          context.responseTrailer.set("sluice-cache", result);
          const done = event.event.value;
          yield {
            ...event,
            event: { case: "done", value: { ...done, route: withStatus(done.route, result) } },
          };
          continue;
        }
        yield event;
      }
    } finally {
      await reader.return();
    }
  }
}

/** Which plan started a flight (a joiner's idempotency fingerprint is checked against it). */
const flightPlans = new WeakMap<object, CachePlan>();

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
