import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import {
  ChatService,
  CompleteRequestSchema,
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { abortError } from "../../src/errors/abort-error.js";
import { UpstreamError } from "../../src/errors/gateway-error.js";
import { failures, type FailureClass } from "../../src/errors/failure-table.js";
import { parseConfig } from "../../src/config/load-config.js";
import type { Provider, UpstreamCall } from "../../src/providers/provider.js";
import { createModelCatalog, type ModelCatalog, type ModelRoute } from "../../src/routing/model-catalog.js";
import { createCallPlanner, type CallPlanner } from "../../src/routing/call-plan.js";
import type { Candidate } from "../../src/routing/candidate.js";
import { createBreakerRegistry, type BreakerRegistry } from "../../src/resilience/breaker-registry.js";
import { createCallRunner, type CallRunner } from "../../src/resilience/call-runner.js";
import { createInFlightLimiter, type InFlightLimiter } from "../../src/resilience/in-flight-limiter.js";
import { createLatencyQuantiles } from "../../src/resilience/latency-quantiles.js";
import { createRetryBudget, type RetryBudget } from "../../src/resilience/retry-budget.js";

/**
 * An in-memory Provider scripted per call, for unit tests of the call runner under fake
 * timers: every wait is a timer (so `vi.advanceTimersByTimeAsync` drives it), every wait
 * obeys the call's AbortSignal and rejects the way the real adapters do
 * (`abortError(signal)`), and every call is recorded with its signal.
 */

/** How a stream ends after its deltas. */
export type StreamEnd =
  /** A `done` event: a complete stream. */
  | "done"
  /** UpstreamError(streamCut): the provider's terminal event never came. */
  | "cut"
  /** No further event until the call's signal aborts. */
  | "hang"
  /** As "hang", but the abort is reported as `abortedWith` (an adapter that words it its own way). */
  | { readonly hangThenAbortWith: unknown }
  /** Thrown after the deltas. */
  | { readonly error: unknown };

export type Script =
  | { readonly kind: "answer"; readonly text: string; readonly afterMs: number }
  | { readonly kind: "fail"; readonly error: unknown; readonly afterMs: number; readonly heedAbort: boolean }
  | { readonly kind: "hang"; readonly abortedWith?: unknown }
  | {
      readonly kind: "stream";
      readonly texts: readonly string[];
      readonly end: StreamEnd;
      /** Before `start`. */
      readonly startAfterMs: number;
      /** Between `start` and the first delta, and between deltas. */
      readonly gapMs: number;
      /** false: the first delta comes even when the signal aborted meanwhile (it was already on its way). */
      readonly heedAbort: boolean;
    };

/** Unary: answers `text` after `afterMs`. */
export function answer(text: string, afterMs = 0): Script {
  return { kind: "answer", text, afterMs };
}

/**
 * Unary or stream: fails with `error` after `afterMs` (a stream, before its `start`).
 * `heedAbort: false`: an abort meanwhile does not end the wait (the failure crosses the abort).
 */
export function fail(error: unknown, afterMs = 0, options: { heedAbort?: boolean } = {}): Script {
  return { kind: "fail", error, afterMs, heedAbort: options.heedAbort ?? true };
}

/**
 * Unary or stream: nothing, until the call's signal aborts; then rejects with
 * `abortError(signal)` as the real adapters do, or with `abortedWith` when given.
 */
export function hang(abortedWith?: unknown): Script {
  return abortedWith === undefined ? { kind: "hang" } : { kind: "hang", abortedWith };
}

/** A stream: `start`, one delta per text (`gapMs` apart), then `end`. */
export function stream(
  texts: readonly string[],
  end: StreamEnd = "done",
  options: { startAfterMs?: number; gapMs?: number; heedAbort?: boolean } = {},
): Script {
  return {
    kind: "stream",
    texts,
    end,
    startAfterMs: options.startAfterMs ?? 0,
    gapMs: options.gapMs ?? 0,
    heedAbort: options.heedAbort ?? true,
  };
}

/** An UpstreamError of `failure`, as an adapter throws it. */
export function upstreamError(
  failure: FailureClass,
  options: { provider?: string; retryAfterMs?: number; status?: number } = {},
): UpstreamError {
  const provider = options.provider ?? "fake";
  return new UpstreamError({
    failure,
    provider,
    message: `provider ${provider}: ${failure.reason}`,
    status: options.status,
    retryAfterMs: options.retryAfterMs,
  });
}

/** One call the fake received. */
export interface FakeCall {
  readonly kind: "complete" | "stream";
  readonly model: string;
  /** The signal the call got: what the real adapter would hand to undici. */
  readonly signal: AbortSignal;
  /** Date.now() (fake under fake timers) when the call started. */
  readonly at: number;
  /** Date.now() when `signal` aborted; undefined while it has not. */
  abortedAt: number | undefined;
  /** Streams: the consumer closed the iterator (`return()`) before it ended by itself, which closes the upstream request. */
  returned: boolean;
}

export interface FakeProvider extends Provider {
  /** Every call, in order. */
  readonly calls: FakeCall[];
  /** Appends scripts for the next calls, one per call, in order. */
  script(...scripts: Script[]): FakeProvider;
  /** What every call gets once the queued scripts are used up (default: none — the call fails the test). */
  otherwise(script: Script): FakeProvider;
}

export function createFakeProvider(name: string): FakeProvider {
  const queue: Script[] = [];
  let fallback: Script | undefined;
  const calls: FakeCall[] = [];

  function begin(kind: FakeCall["kind"], call: UpstreamCall): { record: FakeCall; script: Script } {
    const record: FakeCall = {
      kind,
      model: call.model,
      signal: call.signal,
      at: Date.now(),
      abortedAt: undefined,
      returned: false,
    };
    if (call.signal.aborted) record.abortedAt = Date.now();
    else call.signal.addEventListener("abort", () => (record.abortedAt = Date.now()), { once: true });
    calls.push(record);
    const script = queue.shift() ?? fallback;
    if (script === undefined) throw new Error(`fake provider ${name}: no script for call ${calls.length}`);
    return { record, script };
  }

  const provider: FakeProvider = {
    name,
    type: "openai",
    calls,
    script(...scripts) {
      queue.push(...scripts);
      return provider;
    },
    otherwise(script) {
      fallback = script;
      return provider;
    },
    async complete(_request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse> {
      const { script } = begin("complete", call);
      switch (script.kind) {
        case "answer":
          await wait(script.afterMs, call.signal);
          return response(name, call.model, script.text);
        case "fail":
          await wait(script.afterMs, script.heedAbort ? call.signal : new AbortController().signal);
          throw script.error;
        case "hang":
          await wait(Number.POSITIVE_INFINITY, call.signal, script.abortedWith);
          throw new Error("unreachable");
        case "stream":
          throw new Error(`fake provider ${name}: a stream script for a unary call`);
      }
    },
    stream(_request: CompleteRequest, call: UpstreamCall): AsyncIterable<StreamCompleteResponse> {
      const { record, script } = begin("stream", call);
      return { [Symbol.asyncIterator]: () => new FakeStream(name, call, record, frames(name, call.model, script)) };
    },
    async close() {},
  };
  return provider;
}

/** One step of a scripted stream: wait, then yield an event, throw, hang or end. */
type Frame = (
  | { readonly waitMs: number; readonly event: StreamCompleteResponse }
  | { readonly waitMs: number; readonly error: unknown }
  | { readonly waitMs: number; readonly end: true }
) & { readonly abortedWith?: unknown; readonly deaf?: boolean };

function frames(provider: string, model: string, script: Script): Frame[] {
  switch (script.kind) {
    case "answer":
      throw new Error(`fake provider ${provider}: a unary script for a stream`);
    case "fail":
      if (!script.heedAbort) throw new Error(`fake provider ${provider}: heedAbort is for unary calls`);
      return [{ waitMs: script.afterMs, error: script.error }];
    case "hang":
      return [{ waitMs: Number.POSITIVE_INFINITY, end: true, abortedWith: script.abortedWith }];
    case "stream": {
      const out: Frame[] = [
        { waitMs: script.startAfterMs, event: event({ case: "start", value: { id: "fake-1", model, provider } }) },
      ];
      for (const text of script.texts) out.push({ waitMs: script.gapMs, event: event({ case: "delta", value: { text } }) });
      if (!script.heedAbort && out.length > 1) out[1] = { ...out[1]!, deaf: true };
      const { end } = script;
      if (end === "done")
        out.push(
          { waitMs: script.gapMs, event: event({ case: "done", value: { finishReason: FinishReason.STOP } }) },
          { waitMs: 0, end: true },
        );
      else if (end === "cut") out.push({ waitMs: script.gapMs, error: upstreamError(failures.streamCut, { provider }) });
      else if (end === "hang") out.push({ waitMs: Number.POSITIVE_INFINITY, end: true });
      else if ("hangThenAbortWith" in end)
        out.push({ waitMs: Number.POSITIVE_INFINITY, end: true, abortedWith: end.hangThenAbortWith });
      else out.push({ waitMs: script.gapMs, error: end.error });
      return out;
    }
  }
}

/** The adapter-side iterator: `return()` closes the upstream request at once, as the real stream answer does. */
class FakeStream implements AsyncIterator<StreamCompleteResponse> {
  private index = 0;
  private closed = false;

  constructor(
    private readonly provider: string,
    private readonly call: UpstreamCall,
    private readonly record: FakeCall,
    private readonly script: Frame[],
  ) {}

  async next(): Promise<IteratorResult<StreamCompleteResponse>> {
    if (this.closed) return { done: true, value: undefined };
    const frame = this.script[this.index++];
    if (frame === undefined) throw new Error(`fake provider ${this.provider}: next() after the end`);
    await wait(frame.waitMs, frame.deaf === true ? new AbortController().signal : this.call.signal, frame.abortedWith);
    if ("event" in frame) return { done: false, value: frame.event };
    this.closed = true;
    if ("error" in frame) throw frame.error;
    return { done: true, value: undefined };
  }

  async return(): Promise<IteratorResult<StreamCompleteResponse>> {
    if (!this.closed) this.record.returned = true;
    this.closed = true;
    return { done: true, value: undefined };
  }
}

/** Resolves after `ms` (at once for 0), or rejects with `abortedWith` / `abortError(signal)` when it aborts first. */
function wait(ms: number, signal: AbortSignal, abortedWith?: unknown): Promise<void> {
  const aborted = (): unknown => abortedWith ?? abortError(signal);
  if (signal.aborted) return Promise.reject(aborted());
  if (ms === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
    function done(): void {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort(): void {
      clearTimeout(timer);
      reject(aborted());
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function event(init: MessageInitShape<typeof StreamCompleteResponseSchema>["event"]): StreamCompleteResponse {
  return create(StreamCompleteResponseSchema, { event: init });
}

function response(provider: string, model: string, text: string): CompleteResponse {
  return create(CompleteResponseSchema, {
    id: "fake-1",
    model,
    provider,
    message: { role: Role.ASSISTANT, content: [{ part: { case: "text", value: text } }] },
    finishReason: FinishReason.STOP,
  });
}

/** A caller's HandlerContext with its own AbortController: `cancel()` is the caller hanging up. */
export interface CallerContext extends HandlerContext {
  cancel(): void;
}

/** A HandlerContext as connect-node builds it; `timeoutMs` is the caller's deadline (a fake timer under fake timers). */
export function callerContext(options: { timeoutMs?: number } = {}): CallerContext {
  const controller = new AbortController();
  const context = createHandlerContext({
    service: ChatService,
    method: ChatService.method.complete,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://127.0.0.1/sluice.v1.ChatService/Complete",
    requestSignal: controller.signal,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return Object.assign(context, { cancel: () => controller.abort() });
}

/** The outcome of a stream read to its end: every event, and the error it ended with (undefined: OK). */
export interface StreamOutcome {
  readonly events: StreamCompleteResponse[];
  readonly error: unknown;
}

export async function drain(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamOutcome> {
  const seen: StreamCompleteResponse[] = [];
  try {
    for await (const e of events) seen.push(e);
  } catch (error) {
    return { events: seen, error };
  }
  return { events: seen, error: undefined };
}

/** A promise's state, readable without awaiting it (to assert "not yet" at a fake instant). */
export interface Tracked<T> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
}

export function track<T>(promise: Promise<T>): Tracked<T> {
  const state = { promise, settled: false, value: undefined as T | undefined, error: undefined as unknown };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

/** The real call runner and its parts, built from a parsed configuration over fake providers "a", "b" and "c". */
export interface RunnerRig {
  readonly runner: CallRunner;
  readonly a: FakeProvider;
  readonly b: FakeProvider;
  readonly c: FakeProvider;
  readonly catalog: ModelCatalog;
  readonly planner: CallPlanner;
  readonly breakers: BreakerRegistry;
  readonly limiter: InFlightLimiter;
  readonly retryBudget: RetryBudget;
  /** The alias's route and the planner's candidates for it, as the chat service computes them. */
  plan(alias: string): { route: ModelRoute; candidates: readonly Candidate[] };
  complete(alias?: string, context?: HandlerContext): Promise<CompleteResponse>;
  stream(alias?: string, context?: HandlerContext): AsyncGenerator<StreamCompleteResponse>;
  /** Stops the breakers' timers. */
  close(): void;
}

export interface RigOptions {
  /** The `resilience` section (retry budget, breakers). */
  readonly resilience?: Record<string, unknown>;
  /** Backoff jitter; default 0.5, so a backoff is exactly half its ceiling. */
  readonly random?: () => number;
}

/**
 * Builds the runner the way src/app/create-sluice.ts does, from `models` (the config
 * file's `models` section; providers "a", "b", "c" exist). Create it after
 * `vi.useFakeTimers()`: breakers, the retry budget and the deadline read the fake clock.
 */
export function createRunnerRig(models: Record<string, unknown>, options: RigOptions = {}): RunnerRig {
  const config = parseConfig(
    {
      providers: { a: { type: "demo" }, b: { type: "demo" }, c: { type: "demo" } },
      models,
      resilience: options.resilience ?? {},
    },
    {},
  );
  const a = createFakeProvider("a");
  const b = createFakeProvider("b");
  const c = createFakeProvider("c");
  const catalog = createModelCatalog(
    config,
    new Map<string, Provider>([
      ["a", a],
      ["b", b],
      ["c", c],
    ]),
  );
  const planner = createCallPlanner(catalog);
  const breakers = createBreakerRegistry(config.resilience.breaker);
  const retryBudget = createRetryBudget(config.resilience.retryBudget);
  const limiter = createInFlightLimiter();
  const runner = createCallRunner({
    breakers,
    retryBudget,
    planner,
    limiter,
    latencies: createLatencyQuantiles(),
    random: options.random ?? (() => 0.5),
  });
  const request = create(CompleteRequestSchema, {
    model: "chat",
    messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hi" } }] }],
  });
  const plan = (alias: string) => {
    const route = catalog.resolve(alias);
    return { route, candidates: planner.plan(route, { ...request, model: alias }, () => undefined) };
  };
  return {
    runner,
    a,
    b,
    c,
    catalog,
    planner,
    breakers,
    limiter,
    retryBudget,
    plan,
    complete(alias = "chat", context = callerContext()) {
      const { route, candidates } = plan(alias);
      return runner.complete({ ...request, model: alias }, route, candidates, context);
    },
    stream(alias = "chat", context = callerContext()) {
      const { route, candidates } = plan(alias);
      return runner.stream({ ...request, model: alias }, route, candidates, context);
    },
    close: () => breakers.shutdown(),
  };
}

/** The ErrorInfo reason an error carries (undefined when it has none). */
export function reasonOf(err: unknown): string | undefined {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.reason;
}
