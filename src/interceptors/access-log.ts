import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";

/**
 * One access line per RPC (procedure, code, duration) and the error boundary: an error
 * that is not a ConnectError is a bug — it is logged with its stack and reaches the
 * caller only as INTERNAL "internal error", so no internal text (which could hold a
 * prompt fragment or a secret) leaks.
 */
export function accessLogInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const finish = (err: unknown): void => {
      const code = err === undefined ? "ok" : Code[(err as ConnectError).code]?.toLowerCase() ?? "unknown";
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      if (err === undefined || (err as ConnectError).code !== Code.Internal) {
        logger.info({ procedure, code, durationMs }, "rpc");
      } else {
        logger.error({ procedure, code, durationMs, err: (err as ConnectError).message }, "rpc");
      }
    };
    let res: UnaryResponse | StreamResponse;
    try {
      res = await next(req);
    } catch (err) {
      const mapped = boundary(err, logger, procedure);
      finish(mapped);
      throw mapped;
    }
    if (!res.stream) {
      finish(undefined);
      return res;
    }
    return { ...res, message: logStream(res.message, finish, logger, procedure) };
  };
}

async function* logStream<T>(
  messages: AsyncIterable<T>,
  finish: (err: unknown) => void,
  logger: Logger,
  procedure: string,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    const mapped = boundary(err, logger, procedure);
    finish(mapped);
    throw mapped;
  }
  finish(undefined);
}

function boundary(err: unknown, logger: Logger, procedure: string): ConnectError {
  if (err instanceof ConnectError) return err;
  logger.error({ procedure, err }, "unexpected error in handler");
  return new ConnectError("internal error", Code.Internal);
}
