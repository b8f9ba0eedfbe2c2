import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { abortError } from "../errors/abort-error.js";
import type { UpstreamCall } from "../providers/provider.js";
import type { Candidate } from "../routing/candidate.js";
import type { CallPlanner } from "../routing/call-plan.js";
import type { Deployment, ModelRoute } from "../routing/model-catalog.js";
import { sleep } from "./abortable-sleep.js";
import type { AttemptSignal } from "./attempt-signal.js";
import { createAttempts, settle, type Attempt } from "./attempt.js";
import { exhaustedError, newCallProgress, type CallProgress } from "./call-progress.js";
import type { BreakerRegistry } from "./breaker-registry.js";
import { degradedResponse, degradedStream } from "./degraded-answer.js";
import { raceHedged, type Winner } from "./hedge-race.js";
import { createInFlightLimiter, type InFlightLimiter } from "./in-flight-limiter.js";
import { createLatencyQuantiles, type LatencyKind, type LatencyQuantiles } from "./latency-quantiles.js";
import { decideRetry } from "./retry-decision.js";
import type { RetryBudget } from "./retry-budget.js";
import { degradedRoute, routeInfo, setRouteHeaders } from "./route-info.js";
import { openStream, type OpenedStream } from "./stream-attempt.js";
import { callRecordKey } from "../telemetry/call-record.js";
import type { CallTelemetry } from "../telemetry/call-telemetry.js";
import { answerFacts, recordAnswer, recordRoute } from "./call-record-fill.js";

export interface CallRunnerDeps {
  readonly breakers: BreakerRegistry;
  readonly retryBudget: RetryBudget;
  /** Strategy feedback: time to first token / latency per deployment, and in-flight attempts. */
  readonly planner?: Pick<CallPlanner, "observe" | "begin" | "end">;
  /** Per-deployment `maxInFlight`; a fresh one when not shared. */
  readonly limiter?: InFlightLimiter;
  /** Observed times per deployment, for hedging at a percentile; a fresh one when not shared. */
  readonly latencies?: LatencyQuantiles;
  /** Backoff jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** Spans and metrics per attempt, and call events (skips, fallback, degraded answers). */
  readonly telemetry?: CallTelemetry;
}

export interface CallRunner {
  /** One whole answer, with `route` set (and the `sluice-*` response headers). */
  complete(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): Promise<CompleteResponse>;
  /** A stream of events; `done` carries `route` (and the `sluice-*` trailers are set). */
  stream(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): AsyncGenerator<StreamCompleteResponse>;
}

/**
 * Runs a call over its plan: per deployment, retries with backoff that honours
 * Retry-After (the failure table decides what is retryable), the process-wide retry
 * budget, one circuit breaker per deployment, hedging, then fail-over to the next
 * candidate and the model's fallbacks. For streams all of this happens only before the
 * first token reaches the caller; after it, an upstream failure ends the stream with its
 * status. Every wait obeys the caller's signal.
 */
export function createCallRunner(deps: CallRunnerDeps): CallRunner {
  const { retryBudget, planner, telemetry } = deps;
  const latencies = deps.latencies ?? createLatencyQuantiles();
  const attempts = createAttempts({
    breakers: deps.breakers,
    limiter: deps.limiter ?? createInFlightLimiter(),
    planner,
    telemetry,
  });

  /** The hedge delay for an attempt on `candidate`: fixed, or its observed percentile once known. */
  function hedgeDelay(
    hedge: { delayMs: number; percentile?: number | undefined },
    candidate: Candidate,
    kind: LatencyKind,
  ): number {
    if (hedge.percentile === undefined) return hedge.delayMs;
    return latencies.quantile(candidate.deployment.key, kind, hedge.percentile) ?? hedge.delayMs;
  }

  /** Whether to go on after `err` on this candidate: "retry" (after its backoff), "next" candidate, or "stop". */
  async function afterFailure(
    err: unknown,
    candidate: Candidate,
    attempt: number,
    started: number,
    signal: AbortSignal,
    progress: CallProgress,
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
        fallbackOnContextLength: candidate.route.config.fallbackOnContextLength,
      },
      { initialMs: retry.initialBackoffMs, maxMs: retry.maxBackoffMs },
      deps.random,
    );
    if (decision.kind === "retry") {
      // The budget caps retries process-wide; past it, fail over rather than hammer.
      if (!retryBudget.tryAcquireRetry()) {
        if (progress.record !== undefined) telemetry?.event(progress.record, "retry_budget_exhausted", candidate.deployment.key);
        return "next";
      }
      await sleep(decision.delayMs, signal);
      return "retry";
    }
    return decision.kind === "failover" ? "next" : "stop";
  }

  /** A call starts: it counts toward the retry budget's request rate. */
  function beginCall(context: HandlerContext): { started: number; progress: CallProgress } {
    retryBudget.recordRequest();
    return { started: Date.now(), progress: newCallProgress(context.values.get(callRecordKey)) };
  }

  /** Every candidate failed: the alias's degraded answer, when it has one, is what the caller gets. */
  function noteDegraded(progress: CallProgress): void {
    const record = progress.record;
    if (record === undefined) return;
    record.degraded = true;
    record.attempts = progress.attempts;
    telemetry?.event(record, "degraded");
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
    progress: CallProgress,
    started: number,
    run: (target: Candidate) => (attemptSignal: AttemptSignal, traceparent: string | undefined) => Promise<T>,
    discard: (value: T) => Promise<unknown>,
    kind: LatencyKind,
  ): Promise<Winner<T> | undefined> {
    const hedge = requested.config.hedge;
    /** Candidates that already ran as a hedge partner are not tried again (only hedged calls have any). */
    const used = hedge === undefined ? undefined : new Set<Candidate>();
    let fellBack = false;
    for (let index = 0; index < candidates.length; index++) {
      const candidate = candidates[index]!;
      if (used?.has(candidate)) continue;
      if (!fellBack && candidate.route !== requested) {
        fellBack = true;
        if (progress.record !== undefined) telemetry?.event(progress.record, "fallback", candidate.deployment.key);
      }
      for (let attemptNumber = 1; ; attemptNumber++) {
        const partner =
          used !== undefined && attemptNumber === 1 ? candidates.slice(index + 1).find((c) => !used.has(c)) : undefined;
        const attempt = attempts.start(candidate, signal, progress, partner !== undefined, false, run(candidate));
        if (attempt === undefined) break;
        try {
          if (partner === undefined) {
            try {
              return { attempt, opened: await attempt.opening };
            } catch (err) {
              attempts.finish(attempt, err, signal);
              throw err;
            }
          }
          return await raceHedged<T>({
            first: attempt,
            startSecond: () => {
              const second = attempts.start(partner, signal, progress, true, true, run(partner));
              // A partner skipped (open, at its limit) stays a candidate of its own later.
              if (second !== undefined) used!.add(partner);
              return second;
            },
            delayMs: hedgeDelay(hedge!, candidate, kind),
            signal,
            discard,
            finish: attempts.finish,
          });
        } catch (failure) {
          progress.lastError = failure;
          if (signal.aborted) throw abortError(signal);
          planner?.observe(candidate.deployment.key, { ok: false });
          const next = await afterFailure(failure, candidate, attemptNumber, started, signal, progress);
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
    const { started, progress } = beginCall(context);
    const chosen = await choose(
      candidates,
      requested,
      signal,
      progress,
      started,
      (target) => (attemptSignal, traceparent) =>
        target.deployment.provider.complete(request, upstreamCall(target.deployment, attemptSignal.signal, traceparent)),
      async () => undefined,
      "latency",
    );
    if (chosen !== undefined) {
      const { attempt: winner, opened: response } = chosen;
      winner.ticket.success();
      const latencyMs = performance.now() - winner.started;
      planner?.observe(winner.candidate.deployment.key, { latencyMs, ok: true });
      latencies.record(winner.candidate.deployment.key, "latency", latencyMs);
      const route = routeInfo(winner.candidate, requested, progress.attempts, winner.hedged);
      const answer = answerFacts(response.model, response.id, response.finishReason, response.usage);
      winner.observation.answered(answer);
      winner.observation.end("ok");
      attempts.end(winner);
      recordRoute(progress.record, winner.candidate, route);
      recordAnswer(progress.record, answer);
      response.route = route;
      setRouteHeaders(context.responseHeader, route);
      return response;
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      noteDegraded(progress);
      setRouteHeaders(context.responseHeader, degraded);
      return degradedResponse(requested.config.degraded!.message, degraded);
    }
    throw exhaustedError(progress, requested);
  }

  async function* stream(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): AsyncGenerator<StreamCompleteResponse> {
    const { signal } = context;
    const { started, progress } = beginCall(context);
    const chosen = await choose(
      candidates,
      requested,
      signal,
      progress,
      started,
      (target) => (attemptSignal, traceparent) => openStream(target.deployment, request, attemptSignal, traceparent),
      (opened) => opened.iterator.return?.(undefined) ?? Promise.resolve(),
      "ttft",
    );
    if (chosen !== undefined) {
      yield* relay(chosen.attempt, chosen.opened, requested, progress, context);
      return;
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      noteDegraded(progress);
      setRouteHeaders(context.responseTrailer, degraded);
      yield* degradedStream(requested.config.degraded!.message, degraded);
      return;
    }
    throw exhaustedError(progress, requested);
  }

  /**
   * Streams the chosen attempt to the caller. From here on nothing is retried: an upstream
   * failure ends the stream with its status. Delegated to with `yield*`, which adds no
   * promise hop per event (a wrapping generator would).
   */
  async function* relay(
    attempt: Attempt<OpenedStream>,
    opened: OpenedStream,
    requested: ModelRoute,
    progress: CallProgress,
    context: HandlerContext,
  ): AsyncGenerator<StreamCompleteResponse> {
    const { candidate, attemptSignal, ticket, observation } = attempt;
    const { iterator } = opened;
    const record = progress.record;
    planner?.observe(candidate.deployment.key, { ttftMs: opened.ttftMs, ok: true });
    latencies.record(candidate.deployment.key, "ttft", opened.ttftMs);
    observation.firstChunk();
    const route = routeInfo(candidate, requested, progress.attempts, attempt.hedged);
    recordRoute(record, candidate, route);
    if (record !== undefined) record.ttftMs = performance.now() - record.started;
    let settled = false;
    /** The start event names the answering model; the final one carries the route and settles the breaker ticket as a success. */
    const onEvent = (event: StreamCompleteResponse): StreamCompleteResponse => {
      const { case: kind, value } = event.event;
      if (kind === "done") {
        value.route = route;
        setRouteHeaders(context.responseTrailer, route);
        ticket.success();
        settled = true;
        const answer = answerFacts(undefined, undefined, value.finishReason, value.usage);
        observation.answered(answer);
        observation.end("ok");
        recordAnswer(record, answer);
      } else if (kind === "start") {
        const answer = answerFacts(value.model, value.id, undefined, undefined);
        observation.answered(answer);
        recordAnswer(record, answer);
      } else if (record !== undefined) {
        // What the caller received, for accounting a stream that ends without usage.
        if (kind === "delta" || kind === "reasoningDelta") record.streamedChars += value.text.length;
        else if (kind === "toolCallDelta") record.streamedChars += value.arguments.length + value.name.length;
      }
      return event;
    };
    try {
      for (const event of opened.held) yield onEvent(event);
      for (;;) {
        attemptSignal.awaitingEvent();
        const next = await iterator.next();
        if (next.done) break;
        attemptSignal.eventArrived();
        yield onEvent(next.value);
      }
    } catch (err) {
      const failure = attemptSignal.timedOut ?? err;
      if (!settled) {
        settle(ticket, failure, context.signal);
        observation.end(context.signal.aborted ? "cancelled" : "error", failure);
      }
      settled = true;
      if (context.signal.aborted) throw abortError(context.signal);
      throw ConnectError.from(failure);
    } finally {
      // The caller went away mid-stream (or the adapter ended without done, which the
      // service's stream contract check reports).
      if (!settled) {
        ticket.release();
        observation.end("cancelled");
      }
      // Stops the adapter (aborting its upstream request) when we leave early.
      await iterator.return?.(undefined);
      attempts.end(attempt);
    }
  }

  return { complete, stream };
}

function upstreamCall(deployment: Deployment, signal: AbortSignal, traceparent: string | undefined): UpstreamCall {
  return { model: deployment.model, signal, defaultMaxOutputTokens: deployment.maxOutputTokens, traceparent };
}
