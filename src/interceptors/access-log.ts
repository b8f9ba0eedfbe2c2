import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";

/** Lower-case code names, as the Connect protocol spells them ("not_found"), by code. */
const codeNames: Record<number, string> = {};
for (const [name, value] of Object.entries(Code)) {
  if (typeof value === "number")
    codeNames[value] = name.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? "_" : "") + c.toLowerCase());
}

/**
 * One access line per RPC (procedure, code, duration) and the error boundary: an error
 * that is not a ConnectError is a bug — it is logged with its stack and reaches the
 * caller only as INTERNAL "internal error", so no internal text (which could hold a
 * prompt fragment or a secret) leaks. With `info` disabled it costs one level check.
 */
export function accessLogInterceptor(logger: Logger): Interceptor {
  function log(procedure: string, started: number, err: ConnectError | undefined): void {
    const code = err === undefined ? "ok" : (codeNames[err.code] ?? "unknown");
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    if (err !== undefined && err.code === Code.Internal) {
      logger.error({ procedure, code, durationMs, err: err.message }, "rpc");
    } else {
      logger.info({ procedure, code, durationMs }, "rpc");
    }
  }

  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const started = logger.isLevelEnabled("info") ? performance.now() : -1;
    let res;
    try {
      res = await next(req);
    } catch (err) {
      const mapped = boundary(err, logger, procedure);
      if (started >= 0 || mapped.code === Code.Internal) log(procedure, started, mapped);
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
        (outcome) => {
          // "cancelled": the consumer stopped reading (the caller went away) before the end.
          const err = outcome === "cancelled" ? new ConnectError("the caller went away", Code.Canceled) : outcome;
          if (started >= 0 || err?.code === Code.Internal) log(procedure, started, err);
        },
        (err) => boundary(err, logger, procedure),
      ),
    };
  };
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

  constructor(
    private readonly messages: AsyncIterable<T>,
    private readonly ended: (outcome: ConnectError | undefined | "cancelled") => void,
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
      this.ended(undefined);
    }
    return result;
  };

  private readonly onError = (err: unknown): never => {
    throw this.fail(err);
  };

  private fail(err: unknown): ConnectError {
    this.over = true;
    const mapped = this.boundary(err);
    this.ended(mapped);
    return mapped;
  }

  async return(): Promise<IteratorResult<T>> {
    if (this.over) return finished;
    this.over = true;
    try {
      await this.inner?.return?.();
    } finally {
      this.ended("cancelled");
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
