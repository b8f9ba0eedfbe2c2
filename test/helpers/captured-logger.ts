import { createLogger, type Logger } from "../../src/telemetry/logger.js";

export interface CapturedLogger {
  readonly logger: Logger;
  /** Every line so far, parsed. */
  readonly lines: Record<string, unknown>[];
  /** The lines whose `msg` is `msg`. */
  withMessage(msg: string): Record<string, unknown>[];
}

/**
 * A real Sluice logger (pino, same redaction) whose lines are kept in memory, written
 * synchronously: what a server started in a test writes to stdout in production.
 */
export function createCapturedLogger(level = "info"): CapturedLogger {
  const lines: Record<string, unknown>[] = [];
  const destination = {
    write(line: string): void {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  return {
    logger: createLogger({ level, destination }),
    lines,
    withMessage: (msg) => lines.filter((line) => line["msg"] === msg),
  };
}
