import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  RouteInfoSchema,
  type CompleteRequest,
  type CompleteResponse,
  type RouteInfo,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { gatewayError, UpstreamError } from "../errors/gateway-error.js";
import type { ModelRoute, Deployment } from "../routing/model-catalog.js";
import type { Candidate } from "../routing/candidate.js";
import type { UpstreamCall } from "../providers/provider.js";
import { abortError } from "../errors/abort-error.js";
import { createAttemptSignal, type AttemptSignal } from "./attempt-signal.js";
import { openStream } from "./stream-attempt.js";
import { degradedResponse, degradedStream } from "./degraded-answer.js";
import { decideRetry } from "./retry-decision.js";
import { sleep } from "./abortable-sleep.js";
import type { BreakerRegistry } from "./breaker-registry.js";
import type { BreakerTicket } from "./deployment-breaker.js";
import type { RetryBudget } from "./retry-budget.js";
import type { CallPlanner } from "../routing/call-plan.js";
import { createInFlightLimiter, type InFlightLimiter } from "./in-flight-limiter.js";
import { createLatencyQuantiles, type LatencyKind, type LatencyQuantiles } from "./latency-quantiles.js";

export interface ResilientCallerDeps {
  readonly breakers: BreakerRegistry;
  readonly retryBudget: RetryBudget;
  /** Strategy feedback: time to first token / latency per deployment, and in-flight attempts. */
  readonly planner?: Pick<CallPlanner, "observe" | "begin" | "end">;
  /** Per-deployment `maxInFlight`; a fresh one when not shared. */
  readonly limiter?: InFlightLimiter;
  /** Observed times per deployment, for hedging at a percentile; a fresh one when not shared. */
  readonly latencies?: LatencyQuantiles;
  readonly random?: () => number;
}

/** What the caller learns about how the call was served (RouteInfo + headers). */
interface Progress {
  attempts: number;
  lastError: unknown;
  skippedOpen: number;
  /** Skipped at their `maxInFlight`. */
  skippedBusy: number;
}

const contextLengthReason = "CONTEXT_LENGTH_EXCEEDED";

/**
 * Runs a call over its plan: per deployment, retries with backoff that honours
 * Retry-After (the failure table decides what is retryable), the process-wide retry
 * budget, one circuit breaker per deployment, then fail-over to the next candidate and
 * the model's fallbacks. For streams all of this happens only before the first token
 * reaches the caller; after it, an upstream failure ends the stream with its status.
 * Every wait obeys the caller's signal (DESIGN §4).
 */
export function createResilientCaller(deps: ResilientCallerDeps) {
  const { breakers, retryBudget } = deps;
  const limiter = deps.limiter ?? createInFlightLimiter();
  const latencies = deps.latencies ?? createLatencyQuantiles();

  /** The hedge delay for an attempt on `candidate`: fixed, or its observed percentile once known. */
  function hedgeDelay(hedge: { delayMs: number; percentile?: number | undefined }, candidate: Candidate, kind: LatencyKind): number {
    if (hedge.percentile === undefined) return hedge.delayMs;
    return latencies.quantile(candidate.deployment.key, kind, hedge.percentile) ?? hedge.delayMs;
  }

  /** Whether to go on after `err` on this candidate: "retry" (after delay), "next" candidate, or "stop". */
  async function afterFailure(
    err: unknown,
    candidate: Candidate,
    attempt: number,
    started: number,
    signal: AbortSignal,
  ): Promise<"retry" | "next" | "stop"> {
    if (signal.aborted) return "stop";
    const retry = candidate.route.config.retry;
    const decision = decideRetry(
      err,
      {
        attempt,
        maxAttempts: retry.maxAttempts,
        elapsedMs: Date.now() - started,
        totalBudgetMs: retry.totalBudgetMs,
        maxRetryAfterMs: retry.maxRetryAfterMs,
      },
      { initialMs: retry.initialBackoffMs, maxMs: retry.maxBackoffMs },
      deps.random,
    );
    if (decision.kind === "retry") {
      // The budget caps retries process-wide; past it, fail over rather than hammer.
      if (!retryBudget.tryAcquireRetry()) return "next";
      await sleep(decision.delayMs, signal);
      return "retry";
    }
    if (decision.kind === "failover") return "next";
    if (
      err instanceof UpstreamError &&
      err.failure.reason === contextLengthReason &&
      candidate.route.config.fallbackOnContextLength
    ) {
      return "next";
    }
    return "stop";
  }

  function upstreamCall(deployment: Deployment, signal: AbortSignal): UpstreamCall {
    return { model: deployment.model, signal, defaultMaxOutputTokens: deployment.maxOutputTokens };
  }

  function routeInfo(candidate: Candidate, requested: ModelRoute, attempts: number): RouteInfo {
    return {
      $typeName: "sluice.v1.RouteInfo",
      provider: candidate.deployment.provider.name,
      upstreamModel: candidate.deployment.model,
      attempts,
      fallbackModel: candidate.route === requested ? "" : candidate.route.alias,
      degraded: false,
      hedged: false,
    };
  }

  function setRouteHeaders(target: Headers, route: RouteInfo): void {
    target.set("sluice-provider", route.provider);
    target.set("sluice-upstream-model", route.upstreamModel);
    target.set("sluice-attempts", String(route.attempts));
    if (route.fallbackModel !== "") target.set("sluice-fallback-model", route.fallbackModel);
    if (route.degraded) target.set("sluice-degraded", "true");
    if (route.hedged) target.set("sluice-hedged", "true");
  }

  /** A call starts: it counts toward the retry budget's request rate. */
  function beginCall(): { started: number; progress: Progress } {
    retryBudget.recordRequest();
    return { started: Date.now(), progress: { attempts: 0, lastError: undefined, skippedOpen: 0, skippedBusy: 0 } };
  }

  /** The error when every candidate failed: the last upstream error, or "all open". */
  function exhausted(progress: Progress, requested: ModelRoute): ConnectError {
    if (progress.attempts === 0 && progress.skippedBusy > 0) {
      return gatewayError(
        Code.Unavailable,
        "ALL_DEPLOYMENTS_BUSY",
        `every deployment of model "${requested.alias}" is at its in-flight limit${progress.skippedOpen > 0 ? " or unavailable (circuit open)" : ""}; retry later`,
        { model: requested.alias },
      );
    }
    if (progress.attempts === 0 && progress.skippedOpen > 0) {
      return gatewayError(
        Code.Unavailable,
        "ALL_DEPLOYMENTS_UNAVAILABLE",
        `every deployment of model "${requested.alias}" is unavailable (circuit open); retry later`,
        { model: requested.alias },
      );
    }
    return ConnectError.from(progress.lastError);
  }

  function degradedRoute(requested: ModelRoute, attempts: number): RouteInfo | undefined {
    if (requested.config.degraded === undefined) return undefined;
    return create(RouteInfoSchema, { provider: "sluice", upstreamModel: "degraded", attempts, degraded: true });
  }

  /**
   * Walks the plan — breakers, retries with backoff / Retry-After, hedging, fail-over —
   * until an attempt succeeds (its answer, or a stream's first token), and returns it with
   * its ticket and hooks still open for the caller to finish. Undefined when every
   * candidate failed retryably or was skipped; throws when a failure must reach the caller.
   */
  async function choose<T>(
    candidates: readonly Candidate[],
    requested: ModelRoute,
    signal: AbortSignal,
    progress: Progress,
    started: number,
    run: (target: Candidate) => (attemptSignal: AttemptSignal) => Promise<T>,
    discard: (value: T) => Promise<unknown>,
    kind: LatencyKind,
  ): Promise<{ attempt: Attempt<T>; opened: T } | undefined> {
    const hedge = requested.config.hedge;
    /** Candidates that already ran as a hedge partner are not tried again (only hedged calls have any). */
    const used = hedge === undefined ? undefined : new Set<Candidate>();
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index]!;
      if (used?.has(candidate)) continue;
      for (let attemptNumber = 1; ; attemptNumber++) {
        const partner = used !== undefined && attemptNumber === 1 ? candidates.slice(index + 1).find((c) => !used.has(c)) : undefined;
        const attempt = startAttempt(candidate, signal, progress, partner !== undefined, false, run(candidate));
        if (attempt === undefined) break;
        try {
          if (partner === undefined) {
            try {
              return { attempt, opened: await attempt.opening };
            } catch (err) {
              finishAttempt(attempt, err, signal);
              throw err;
            }
          }
          return await raceHedged(
            attempt,
            () => {
              const second = startAttempt(partner, signal, progress, true, true, run(partner));
              // A partner skipped (open, at its limit) stays a candidate of its own later.
              if (second !== undefined) used!.add(partner);
              return second;
            },
            hedgeDelay(hedge!, candidate, kind),
            signal,
            discard,
          );
        } catch (failure) {
          progress.lastError = failure;
          if (signal.aborted) throw abortError(signal);
          deps.planner?.observe(candidate.deployment.key, { ok: false });
          const next = await afterFailure(failure, candidate, attemptNumber, started, signal);
          if (next === "retry") continue;
          if (next === "next") break;
          throw ConnectError.from(failure);
        }
      }
    }
    return undefined;
  }

  async function complete(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): Promise<CompleteResponse> {
    const { signal } = context;
    const { started, progress } = beginCall();
    const chosen = await choose(
      candidates,
      requested,
      signal,
      progress,
      started,
      (target) => (attemptSignal) =>
        target.deployment.provider.complete(request, upstreamCall(target.deployment, attemptSignal.signal)),
      async () => undefined,
      "latency",
    );
    if (chosen !== undefined) {
      const { attempt: winner, opened: response } = chosen;
      winner.ticket.success();
      const latencyMs = performance.now() - winner.started;
      deps.planner?.observe(winner.candidate.deployment.key, { latencyMs, ok: true });
      latencies.record(winner.candidate.deployment.key, "latency", latencyMs);
      endAttempt(winner);
      const route = routeInfo(winner.candidate, requested, progress.attempts);
      route.hedged = winner.hedged;
      response.route = route;
      setRouteHeaders(context.responseHeader, route);
      return response;
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      setRouteHeaders(context.responseHeader, degraded);
      return degradedResponse(requested.config.degraded!.message, degraded);
    }
    throw exhausted(progress, requested);
  }

  /**
   * An attempt in flight: its own signal, breaker ticket and strategy hooks; `opening`
   * settles with the answer (unary) or the stream's first token (streams).
   */
  interface Attempt<T> {
    readonly candidate: Candidate;
    readonly attemptSignal: AttemptSignal;
    readonly ticket: BreakerTicket;
    readonly opening: Promise<T>;
    readonly hedged: boolean;
    readonly started: number;
  }

  function startAttempt<T>(
    candidate: Candidate,
    signal: AbortSignal,
    progress: Progress,
    own: boolean,
    hedged: boolean,
    run: (attemptSignal: AttemptSignal) => Promise<T>,
  ): Attempt<T> | undefined {
    const { key, maxInFlight } = candidate.deployment;
    if (!limiter.tryAcquire(key, maxInFlight)) {
      progress.skippedBusy++;
      return undefined;
    }
    const ticket = breakers.get(key).begin();
    if (ticket === undefined) {
      limiter.release(key, maxInFlight);
      progress.skippedOpen++;
      return undefined;
    }
    progress.attempts++;
    const attemptSignal = createAttemptSignal(signal, candidate.deployment.timeouts, candidate.deployment.provider.name, own);
    deps.planner?.begin(candidate.deployment.key);
    const started = performance.now();
    // An attempt's own timeout is its failure, whatever the adapter reported on abort. An
    // attempt on the caller's own signal has no timeout of its own: nothing to wrap.
    const opened = run(attemptSignal);
    const opening =
      attemptSignal.signal === signal
        ? opened
        : opened.catch((err: unknown) => {
            throw attemptSignal.timedOut ?? err;
          });
    return { candidate, attemptSignal, ticket, opening, hedged, started };
  }

  /** Ends an attempt whose answer the caller will not get (failed, or lost a hedge race). */
  function finishAttempt<T>(attempt: Attempt<T>, failure: unknown, callerSignal: AbortSignal): void {
    if (failure === undefined) attempt.ticket.release();
    else settle(attempt.ticket, failure, callerSignal);
    endAttempt(attempt);
  }

  /** Releases what `startAttempt` took besides the breaker ticket (exactly once per attempt). */
  function endAttempt(attempt: Attempt<unknown>): void {
    const { key, maxInFlight } = attempt.candidate.deployment;
    limiter.release(key, maxInFlight);
    deps.planner?.end(key);
    attempt.attemptSignal.dispose();
  }

  /**
   * Hedging: when the first attempt has produced no token after `delayMs`, a second one
   * starts on another deployment; the first to produce a token wins and the other is
   * aborted upstream at once. Resolves with the winner, or rejects with the first
   * attempt's failure when both fail.
   */
  async function raceHedged<T>(
    first: Attempt<T>,
    startSecond: () => Attempt<T> | undefined,
    delayMs: number,
    signal: AbortSignal,
    discard: (value: T) => Promise<unknown>,
  ): Promise<{ attempt: Attempt<T>; opened: T }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"hedge">((resolve) => {
      timer = setTimeout(() => resolve("hedge"), delayMs);
    });
    const firstOutcome = first.opening.then(
      (opened) => ({ attempt: first, opened, error: undefined }),
      (error: unknown) => ({ attempt: first, opened: undefined, error }),
    );
    const early = await Promise.race([firstOutcome, timeout]);
    clearTimeout(timer);
    if (early !== "hedge") {
      if (early.opened !== undefined) return { attempt: first, opened: early.opened };
      finishAttempt(first, early.error, signal);
      throw early.error;
    }
    const second = startSecond();
    if (second === undefined) {
      const outcome = await firstOutcome;
      if (outcome.opened !== undefined) return { attempt: first, opened: outcome.opened };
      finishAttempt(first, outcome.error, signal);
      throw outcome.error;
    }
    const secondOutcome = second.opening.then(
      (opened) => ({ attempt: second, opened, error: undefined }),
      (error: unknown) => ({ attempt: second, opened: undefined, error }),
    );
    const lost = new ConnectError("hedged attempt lost the race", Code.Canceled);
    const winner = await Promise.race([firstOutcome, secondOutcome]);
    const other = winner.attempt === first ? secondOutcome : firstOutcome;
    const otherAttempt = winner.attempt === first ? second : first;
    if (winner.opened !== undefined) {
      // The loser is cut at once (its upstream request aborted), then cleaned up.
      otherAttempt.attemptSignal.abort(lost);
      void other.then(async (outcome) => {
        if (outcome.opened !== undefined) await discard(outcome.opened).catch(() => undefined);
        finishAttempt(otherAttempt, undefined, signal);
      });
      return { attempt: winner.attempt, opened: winner.opened };
    }
    finishAttempt(winner.attempt, winner.error, signal);
    const rest = await other;
    if (rest.opened !== undefined) return { attempt: otherAttempt, opened: rest.opened };
    finishAttempt(otherAttempt, rest.error, signal);
    throw first === winner.attempt ? winner.error : rest.error;
  }

  async function* stream(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): AsyncGenerator<StreamCompleteResponse> {
    const { signal } = context;
    const { started, progress } = beginCall();
    const chosen = await choose(
      candidates,
      requested,
      signal,
      progress,
      started,
      (target) => (attemptSignal) => openStream(target.deployment, request, attemptSignal),
      (opened) => opened.iterator.return?.(undefined) ?? Promise.resolve(),
      "ttft",
    );
    if (chosen !== undefined) {
      // Streams the chosen attempt to the caller. From here on nothing is retried: an upstream
      // failure ends the stream with its status (DESIGN §4). Inline, not a second generator:
      // each layer is held for the stream's life and costs a promise hop per event.
      const { attempt, opened } = chosen;
      const { candidate, attemptSignal, ticket } = attempt;
      const { iterator } = opened;
      deps.planner?.observe(candidate.deployment.key, { ttftMs: opened.ttftMs, ok: true });
      latencies.record(candidate.deployment.key, "ttft", opened.ttftMs);
      const route = routeInfo(candidate, requested, progress.attempts);
      route.hedged = attempt.hedged;
      let settled = false;
      /** The final event carries the route; it settles the breaker ticket as a success. */
      const onEvent = (event: StreamCompleteResponse): StreamCompleteResponse => {
        if (event.event.case === "done") {
          event.event.value.route = route;
          setRouteHeaders(context.responseTrailer, route);
          ticket.success();
          settled = true;
        }
        return event;
      };
      try {
        for (const event of opened.held) yield onEvent(event);
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          attemptSignal.eventArrived();
          yield onEvent(next.value);
        }
      } catch (err) {
        const failure = attemptSignal.timedOut ?? err;
        if (!settled) settle(ticket, failure, context.signal);
        settled = true;
        if (context.signal.aborted) throw abortError(context.signal);
        throw ConnectError.from(failure);
      } finally {
        // The caller went away mid-stream (or the adapter ended without done, which the
        // service's stream-shape check reports).
        if (!settled) ticket.release();
        // Stops the adapter (aborting its upstream request) when we leave early.
        await iterator.return?.(undefined);
        endAttempt(attempt);
      }
      return;
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      setRouteHeaders(context.responseTrailer, degraded);
      yield* degradedStream(requested.config.degraded!.message, degraded);
      return;
    }
    throw exhausted(progress, requested);
  }

  return { complete, stream };
}

/** Tells the breaker how an attempt ended: the caller's own cancel or deadline never counts. */
function settle(ticket: BreakerTicket, err: unknown, callerSignal: AbortSignal): void {
  if (callerSignal.aborted) ticket.release();
  else ticket.failure(err);
}

export type ResilientCaller = ReturnType<typeof createResilientCaller>;
export type { AttemptSignal };
