import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type Logger, recordLogger } from "../telemetry/logger.js";
import { createLogSummary } from "../telemetry/log-summary.js";
import { CallRecord, callRecordKey, protocolOf } from "../telemetry/call-record.js";
import type { CallTelemetry } from "../telemetry/call-telemetry.js";
import { codeName } from "../telemetry/error-type.js";
import { requestIdOf, withRequestId } from "./request-id.js";

/** How often calls their callers cancelled are summarised, by default (README "Limits"). */
export const cancelledSummaryIntervalMs = 10_000;

export interface AccessLogOptions {
  /** The summary interval for calls cancelled by their callers (see accessLogInterceptor). Default 10 s. */
  readonly cancelledSummaryIntervalMs?: number;
  /** Spans and metrics of each call, begun and ended here with the call's record. */
  readonly telemetry?: CallTelemetry | undefined;
}

/**
 * The outermost step of every call: its record (request id, the facts inner layers fill
 * in), its telemetry, one access line per RPC written from the record, and the error
 * boundary: an error that is not a ConnectError is a bug — it is logged with its stack and
 * reaches the caller only as INTERNAL "internal error", so no internal text (which could
 * hold a prompt fragment or a secret) leaks. Every answer carries `x-request-id` (the
 * caller's, or one made here), and every error also names it in its ErrorInfo.
 *
 * Calls their callers cancelled before any answer (a reset stream, a closed connection)
 * are not one line each: a reset storm would write tens of thousands of lines a second.
 * The first after a quiet spell gets its line as usual; the ones after it are counted and
 * reported as one summary line per interval while they keep coming (log-summary.ts).
 */
export function accessLogInterceptor(logger: Logger, options: AccessLogOptions = {}): Interceptor {
  const telemetry = options.telemetry;
  // Access lines hold only what the record holds (never request text, headers or keys).
  const lines = recordLogger(logger);
  const cancelled = createLogSummary(logger, {
    intervalMs: options.cancelledSummaryIntervalMs ?? cancelledSummaryIntervalMs,
    message: "rpcs cancelled by their callers",
  });

  function log(record: CallRecord, err: ConnectError | undefined): void {
    if (err !== undefined && err.code === Code.Internal) {
      // The message of an INTERNAL can come from a provider (bounded, keys already masked by
      // the failure table): it goes through the redacting logger, like every free text.
      logger.error(accessFields(record, err, { err: err.message }), "rpc");
    } else if (lines.isLevelEnabled("info")) {
      lines.info(accessFields(record, err, {}), "rpc");
    }
  }

  /** The call ended: its telemetry, and its line (or a count in the summary when its caller left before any answer). */
  function ended(record: CallRecord, err: ConnectError | undefined, signal: AbortSignal, answered: boolean): void {
    if (record.onEnd !== undefined) {
      const onEnd = record.onEnd;
      record.onEnd = undefined;
      onEnd(record, err !== undefined);
    }
    telemetry?.end(record, err);
    if (err !== undefined && !answered && leftByCaller(err, signal)) {
      // Not a fault of the server's: only counted, and only when access lines are wanted.
      if (logger.isLevelEnabled("info") && !cancelled.count(record.rpc)) log(record, err);
      return;
    }
    log(record, err);
  }

  return (next) => async (req) => {
    const record = new CallRecord(
      `${req.service.typeName}/${req.method.name}`,
      protocolOf(req.header.get("content-type")),
      req.stream,
      performance.now(),
    );
    record.requestId = requestIdOf(req.header);
    req.contextValues.set(callRecordKey, record);
    telemetry?.begin(record, req.header);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const mapped = boundary(err, logger, record.rpc);
      ended(record, mapped, req.signal, false);
      // A request connect-node could not read (its stream's message, inside the chain) is
      // answered as the lanes answer it before the chain: a request never read has no id.
      throw record.handled || mapped.details.length > 0 ? withRequestId(mapped, record.requestId) : mapped;
    }
    res.header.set("x-request-id", record.requestId);
    if (!res.stream) {
      ended(record, undefined, req.signal, true);
      return res;
    }
    return {
      ...res,
      message: new LoggedStream(
        res.message,
        (outcome, answered) => {
          // "cancelled": the consumer stopped reading (the caller went away) before the end.
          ended(record, outcome === "cancelled" ? callerWentAway : outcome, req.signal, answered);
        },
        (err) => boundary(err, logger, record.rpc),
        (err) => withRequestId(err, record.requestId),
      ),
    };
  };
}

/**
 * The access line: who called what over which protocol and how it ended; for chat calls
 * also the route (alias, provider, deployment, the model that answered), attempts, tokens,
 * cost and timings. Never request or answer text.
 */
function accessFields(
  record: CallRecord,
  err: ConnectError | undefined,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const now = performance.now();
  const fields: Record<string, unknown> = {
    requestId: record.requestId,
    rpc: record.rpc,
    protocol: record.protocol,
    code: codeName(err),
    durationMs: roundMs(now - record.started),
    ...extra,
  };
  if (record.tenant !== "") {
    fields["tenant"] = record.tenant;
    if (record.keyId !== "") fields["keyId"] = record.keyId;
  }
  if (record.authRefusal !== "") fields["authRefusal"] = record.authRefusal;
  if (record.traceId !== "") {
    fields["traceId"] = record.traceId;
    fields["spanId"] = record.spanId;
  }
  if (record.alias === "") return fields;
  fields["model"] = record.alias;
  if (record.provider !== "") {
    fields["provider"] = record.provider;
    fields["deployment"] = record.deployment;
    fields["upstreamModel"] = record.responseModel !== "" ? record.responseModel : record.upstreamModel;
  }
  fields["attempts"] = record.attempts;
  if (record.fallback !== "") fields["fallback"] = record.fallback;
  if (record.hedged) fields["hedged"] = true;
  if (record.degraded) fields["degraded"] = true;
  if (record.cacheStatus !== "") fields["cache"] = record.cacheStatus;
  if (record.inputTokens !== 0 || record.outputTokens !== 0) {
    fields["inputTokens"] = record.inputTokens;
    fields["outputTokens"] = record.outputTokens;
  }
  const cost = record.costUsd();
  if (cost !== undefined) fields["costUsd"] = Math.round(cost * 1e9) / 1e9;
  if (record.ttftMs !== undefined) fields["ttftMs"] = roundMs(record.ttftMs);
  fields["upstreamMs"] = roundMs(record.upstreamMs);
  return fields;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Only logged, never thrown: one for every stream whose consumer stopped reading. */
const callerWentAway = new ConnectError("the caller went away", Code.Canceled);

/**
 * Whether a call ended because its caller left: CANCELLED, or the call signal's own
 * abort reason — an HTTP/2 reset with an error code arrives as INTERNAL or
 * RESOURCE_EXHAUSTED (h2-reset-error.ts) — except the caller's deadline (worth a line
 * each) and UNAVAILABLE, which is also what the server's own drain aborts with.
 */
function leftByCaller(err: ConnectError, signal: AbortSignal): boolean {
  if (err.code === Code.Canceled) return true;
  return signal.aborted && signal.reason === err && err.code !== Code.DeadlineExceeded && err.code !== Code.Unavailable;
}

const finished: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * A stream's messages, passed through, with its outcome reported once at its end: an
 * iterator object rather than an async generator, as it is held for the stream's whole
 * life (a generator's suspended frame weighs several times as much).
 */
class LoggedStream<T> implements AsyncIterableIterator<T> {
  private inner: AsyncIterator<T> | undefined = undefined;
  private over = false;
  private answered = false;

  constructor(
    private readonly messages: AsyncIterable<T>,
    /** `answered`: whether any message went out before the end. */
    private readonly ended: (outcome: ConnectError | undefined | "cancelled", answered: boolean) => void,
    private readonly boundary: (err: unknown) => ConnectError,
    /** The error as the caller gets it (the request id added). */
    private readonly outgoing: (err: ConnectError) => ConnectError,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  // Not an async method: a suspended async frame per pending read would outweigh the rest of this object.
  next(): Promise<IteratorResult<T>> {
    if (this.over) return Promise.resolve(finished);
    try {
      this.inner ??= this.messages[Symbol.asyncIterator]();
      return this.inner.next().then(this.onResult, this.onError);
    } catch (err) {
      return Promise.reject(this.fail(err));
    }
  }

  private readonly onResult = (result: IteratorResult<T>): IteratorResult<T> => {
    if (result.done === true) {
      this.over = true;
      this.ended(undefined, this.answered);
    } else {
      this.answered = true;
    }
    return result;
  };

  private readonly onError = (err: unknown): never => {
    throw this.fail(err);
  };

  private fail(err: unknown): ConnectError {
    this.over = true;
    const mapped = this.boundary(err);
    this.ended(mapped, this.answered);
    return this.outgoing(mapped);
  }

  async return(): Promise<IteratorResult<T>> {
    if (this.over) return finished;
    this.over = true;
    try {
      await this.inner?.return?.();
    } finally {
      this.ended("cancelled", this.answered);
    }
    return finished;
  }
}

function boundary(err: unknown, logger: Logger, procedure: string): ConnectError {
  if (err instanceof ConnectError) return err;
  // The type and the stack frames find the bug; the message is left out because it may
  // quote request data (a prompt fragment), and logs never carry prompts.
  const type = err instanceof Error ? err.name : typeof err;
  const frames = err instanceof Error ? (err.stack ?? "").split("\n").slice(1).join("\n") : "";
  logger.error({ procedure, errType: type, stack: frames }, "unexpected error in handler");
  return new ConnectError("internal error", Code.Internal);
}
