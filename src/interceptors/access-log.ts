import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";
import { createLogSummary } from "../telemetry/log-summary.js";

/** Lower-case code names, as the Connect protocol spells them ("not_found"), by code. */
const codeNames: Record<number, string> = {};
for (const [name, value] of Object.entries(Code)) {
  if (typeof value === "number")
    codeNames[value] = name.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? "_" : "") + c.toLowerCase());
}

/** How often calls their callers cancelled are summarised, by default (README "Limits"). */
export const cancelledSummaryIntervalMs = 10_000;

export interface AccessLogOptions {
  /** The summary interval for calls cancelled by their callers (see accessLogInterceptor). Default 10 s. */
  readonly cancelledSummaryIntervalMs?: number;
}

/**
 * One access line per RPC (procedure, code, duration) and the error boundary: an error
 * that is not a ConnectError is a bug — it is logged with its stack and reaches the
 * caller only as INTERNAL "internal error", so no internal text (which could hold a
 * prompt fragment or a secret) leaks. With `info` disabled it costs one level check.
 *
 * Calls their callers cancelled before any answer (a reset stream, a closed connection)
 * are not one line each: a reset storm would write tens of thousands of lines a second.
 * The first after a quiet spell gets its line as usual; the ones after it are counted and
 * reported as one summary line per interval while they keep coming (log-summary.ts).
 */
export function accessLogInterceptor(logger: Logger, options: AccessLogOptions = {}): Interceptor {
  const cancelled = createLogSummary(logger, {
    intervalMs: options.cancelledSummaryIntervalMs ?? cancelledSummaryIntervalMs,
    message: "rpcs cancelled by their callers",
  });

  function log(procedure: string, started: number, err: ConnectError | undefined): void {
    const code = err === undefined ? "ok" : (codeNames[err.code] ?? "unknown");
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    if (err !== undefined && err.code === Code.Internal) {
      logger.error({ procedure, code, durationMs, err: err.message }, "rpc");
    } else {
      logger.info({ procedure, code, durationMs }, "rpc");
    }
  }

  /** An RPC that failed: its line, or a count in the summary when its caller left before any answer. */
  function logFailed(procedure: string, started: number, err: ConnectError, signal: AbortSignal, answered: boolean): void {
    if (!answered && leftByCaller(err, signal)) {
      // Not a fault of the server's: only counted, and only when access lines are wanted.
      if (started >= 0 && !cancelled.count(procedure)) log(procedure, started, err);
      return;
    }
    if (started >= 0 || err.code === Code.Internal) log(procedure, started, err);
  }

  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const started = logger.isLevelEnabled("info") ? performance.now() : -1;
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const mapped = boundary(err, logger, procedure);
      logFailed(procedure, started, mapped, req.signal, false);
      throw mapped;
    }
    if (!res.stream) {
      if (started >= 0) log(procedure, started, undefined);
      return res;
    }
    return {
      ...res,
      message: new LoggedStream(
        res.message,
        (outcome, answered) => {
          if (outcome === undefined) {
            if (started >= 0) log(procedure, started, undefined);
          } else {
            // "cancelled": the consumer stopped reading (the caller went away) before the end.
            logFailed(procedure, started, outcome === "cancelled" ? callerWentAway : outcome, req.signal, answered);
          }
        },
        (err) => boundary(err, logger, procedure),
      ),
    };
  };
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
    return mapped;
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
