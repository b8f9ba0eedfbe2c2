import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  RouteInfoSchema,
  type CompleteRequest,
  type CompleteResponse,
  type RouteInfo,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { gatewayError, UpstreamError } from "../errors/gateway-error.js";
import type { ModelRoute, Deployment } from "../routing/model-catalog.js";
import type { UpstreamCall } from "../providers/provider.js";
import { abortError } from "./upstream-client.js";
import { createAttemptSignal, type AttemptSignal } from "./attempt-signal.js";
import { decideRetry } from "./retry-decision.js";
import { sleep } from "./abortable-sleep.js";
import type { BreakerRegistry } from "./breaker-registry.js";
import type { BreakerTicket } from "./deployment-breaker.js";
import type { RetryBudget } from "./retry-budget.js";
import type { CallPlanner } from "../routing/call-plan.js";

/** One deployment to try, in plan order. */
export interface Candidate {
  readonly deployment: Deployment;
  /** The alias the deployment belongs to (another one than requested for a model fallback). */
  readonly route: ModelRoute;
  readonly fallback: boolean;
}

export interface ResilientCallerDeps {
  readonly breakers: BreakerRegistry;
  readonly retryBudget: RetryBudget;
  /** Strategy feedback: time to first token / latency per deployment, and in-flight attempts. */
  readonly planner?: Pick<CallPlanner, "observe" | "begin" | "end">;
  readonly random?: () => number;
}

/** What the caller learns about how the call was served (RouteInfo + headers). */
interface Progress {
  attempts: number;
  lastError: unknown;
  skippedOpen: number;
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
    return create(RouteInfoSchema, {
      provider: candidate.deployment.provider.name,
      upstreamModel: candidate.deployment.model,
      attempts,
      fallbackModel: candidate.route === requested ? "" : candidate.route.alias,
    });
  }

  function setRouteHeaders(target: Headers, route: RouteInfo): void {
    target.set("sluice-provider", route.provider);
    target.set("sluice-upstream-model", route.upstreamModel);
    target.set("sluice-attempts", String(route.attempts));
    if (route.fallbackModel !== "") target.set("sluice-fallback-model", route.fallbackModel);
    if (route.degraded) target.set("sluice-degraded", "true");
  }

  /** The error when every candidate failed: the last upstream error, or "all open". */
  function exhausted(progress: Progress, requested: ModelRoute): ConnectError {
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

  async function complete(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): Promise<CompleteResponse> {
    const { signal } = context;
    retryBudget.recordRequest();
    const started = Date.now();
    const progress: Progress = { attempts: 0, lastError: undefined, skippedOpen: 0 };
    for (const candidate of candidates) {
      const breaker = breakers.get(candidate.deployment.key);
      for (let attempt = 1; ; attempt++) {
        const ticket = breaker.begin();
        if (ticket === undefined) {
          progress.skippedOpen++;
          break;
        }
        progress.attempts++;
        const attemptSignal = createAttemptSignal(signal, candidate.deployment.timeouts, candidate.deployment.provider.name, false);
        const attemptStarted = performance.now();
        deps.planner?.begin(candidate.deployment.key);
        try {
          const response = await candidate.deployment.provider.complete(request, upstreamCall(candidate.deployment, attemptSignal.signal));
          ticket.success();
          deps.planner?.observe(candidate.deployment.key, { latencyMs: performance.now() - attemptStarted, ok: true });
          const route = routeInfo(candidate, requested, progress.attempts);
          response.route = route;
          setRouteHeaders(context.responseHeader, route);
          return response;
        } catch (err) {
          const failure = attemptSignal.timedOut ?? err;
          settle(ticket, failure, signal);
          deps.planner?.observe(candidate.deployment.key, { ok: false });
          progress.lastError = failure;
          if (signal.aborted) throw abortError(signal);
          const next = await afterFailure(failure, candidate, attempt, started, signal);
          if (next === "retry") continue;
          if (next === "next") break;
          throw ConnectError.from(failure);
        } finally {
          deps.planner?.end(candidate.deployment.key);
          attemptSignal.dispose();
        }
      }
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      setRouteHeaders(context.responseHeader, degraded);
      return {
        $typeName: "sluice.v1.CompleteResponse",
        id: `degraded-${Date.now().toString(36)}`,
        model: "degraded",
        provider: "sluice",
        message: {
          $typeName: "sluice.v1.Message",
          role: Role.ASSISTANT,
          content: [{ $typeName: "sluice.v1.ContentPart", part: { case: "text", value: requested.config.degraded!.message } }],
          toolCalls: [],
          toolCallId: "",
          name: "",
          reasoning: "",
        },
        finishReason: FinishReason.STOP,
        route: degraded,
      };
    }
    throw exhausted(progress, requested);
  }

  async function* stream(
    request: CompleteRequest,
    requested: ModelRoute,
    candidates: readonly Candidate[],
    context: HandlerContext,
  ): AsyncGenerator<StreamCompleteResponse> {
    const { signal } = context;
    retryBudget.recordRequest();
    const started = Date.now();
    const progress: Progress = { attempts: 0, lastError: undefined, skippedOpen: 0 };
    for (const candidate of candidates) {
      const breaker = breakers.get(candidate.deployment.key);
      for (let attempt = 1; ; attempt++) {
        const ticket = breaker.begin();
        if (ticket === undefined) {
          progress.skippedOpen++;
          break;
        }
        progress.attempts++;
        const attemptSignal = createAttemptSignal(signal, candidate.deployment.timeouts, candidate.deployment.provider.name, false);
        const attemptStarted = performance.now();
        deps.planner?.begin(candidate.deployment.key);
        const events = candidate.deployment.provider.stream(request, upstreamCall(candidate.deployment, attemptSignal.signal));
        const iterator = events[Symbol.asyncIterator]();
        let committed = false;
        let settled = false;
        try {
          // Hold `start` until the first token (or `done`): a failure before then can
          // still be retried or failed over, since nothing reached the caller.
          const first = await iterator.next();
          if (first.done) throw new ConnectError("provider stream ended before it started", Code.Internal);
          let held: StreamCompleteResponse | undefined = first.value;
          if (held.event.case !== "start") {
            throw new ConnectError(`provider adapter sent ${held.event.case ?? "an empty event"} before start`, Code.Internal);
          }
          const route = routeInfo(candidate, requested, progress.attempts);
          for (;;) {
            const next = await iterator.next();
            if (next.done) break;
            const event = next.value;
            if (!committed) {
              committed = true;
              attemptSignal.firstEventArrived();
              deps.planner?.observe(candidate.deployment.key, { ttftMs: performance.now() - attemptStarted, ok: true });
              yield held!;
              held = undefined;
            } else {
              attemptSignal.eventArrived();
            }
            if (event.event.case === "done") {
              event.event.value.route = route;
              setRouteHeaders(context.responseTrailer, route);
              ticket.success();
              settled = true;
            }
            yield event;
          }
          if (!settled) {
            // The adapter ended without done: enforceStreamShape turns this into an error.
            ticket.failure(new Error("stream ended without done"));
            settled = true;
          }
          return;
        } catch (err) {
          const failure = attemptSignal.timedOut ?? err;
          if (!settled) settle(ticket, failure, signal);
          settled = true;
          progress.lastError = failure;
          if (signal.aborted) throw abortError(signal);
          // After the first token, nothing can be retried: the caller has the stream.
          if (committed) throw ConnectError.from(failure);
          deps.planner?.observe(candidate.deployment.key, { ok: false });
          const next = await afterFailure(failure, candidate, attempt, started, signal);
          if (next === "retry") continue;
          if (next === "next") break;
          throw ConnectError.from(failure);
        } finally {
          if (!settled) ticket.release();
          // Stops the adapter (aborting its upstream request) when we leave early.
          await iterator.return?.(undefined);
          deps.planner?.end(candidate.deployment.key);
          attemptSignal.dispose();
        }
      }
    }
    const degraded = degradedRoute(requested, progress.attempts);
    if (degraded !== undefined) {
      setRouteHeaders(context.responseTrailer, degraded);
      yield { $typeName: "sluice.v1.StreamCompleteResponse", event: { case: "start", value: { $typeName: "sluice.v1.StreamStart", id: `degraded-${Date.now().toString(36)}`, model: "degraded", provider: "sluice" } } };
      yield { $typeName: "sluice.v1.StreamCompleteResponse", event: { case: "delta", value: { $typeName: "sluice.v1.ContentDelta", text: requested.config.degraded!.message } } };
      yield {
        $typeName: "sluice.v1.StreamCompleteResponse",
        event: { case: "done", value: { $typeName: "sluice.v1.StreamDone", finishReason: FinishReason.STOP, route: degraded } },
      };
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
