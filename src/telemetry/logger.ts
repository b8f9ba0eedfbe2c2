import { destination, pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

/**
 * Paths redacted from every log line: credentials wherever they appear, and prompt /
 * completion text, which is never logged (a log line must never leak what a user wrote).
 */
export const redactedPaths = [
  "apiKey",
  "*.apiKey",
  "*.*.apiKey",
  "apiKeys",
  "*.apiKeys",
  "*.*.apiKeys",
  "authorization",
  "*.authorization",
  "headers.authorization",
  'headers["x-api-key"]',
  'headers["api-key"]',
  "*.headers.authorization",
  '*.headers["x-api-key"]',
  '*.headers["api-key"]',
  "messages",
  "*.messages",
  "prompt",
  "*.prompt",
  "content",
  "*.content",
];

export interface LoggerOptions {
  readonly level: string;
  /** Where lines go; stdout by default. Tests pass a stream to read them. */
  readonly destination?: DestinationStream;
}

/**
 * JSON lines via pino: fast, structured, with secrets and prompt text redacted. To stdout
 * by default through an asynchronous destination: a line is queued and written in batches
 * while a write is in flight, instead of a blocking write(2) per line (~30 µs each, the
 * access log's main cost); pino flushes what is queued when the process exits.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: "sluice" },
      redact: { paths: redactedPaths, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? destination({ dest: 1, sync: false }),
  );
}

/**
 * The logger for lines built only from Sluice's own records (the access line): no
 * redaction pass. pino's redaction walks every wildcard path over every line — ~30 µs a
 * line for the paths above, ten times the rest of the line's cost — and a line that holds
 * no request data, header or key has nothing to redact. Anything else logs through the
 * redacting logger.
 */
export function recordLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}
