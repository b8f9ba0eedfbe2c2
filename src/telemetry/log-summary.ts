import type { Logger } from "./logger.js";

export interface LogSummaryOptions {
  /** At most one summary line per this many ms. */
  readonly intervalMs: number;
  /** The summary line's `msg`. */
  readonly message: string;
}

/**
 * Events too frequent for a line each (a reset storm cancels tens of thousands of calls
 * a second), as one info line per interval with their count by key:
 * `{ count, byKey: { [key]: n }, intervalMs }`.
 */
export interface LogSummary {
  /**
   * Counts one event. False when it is the first after a quiet interval: the caller logs
   * it as it would have (a single event still reads as before); then the ones within the
   * next interval are counted (true) and summarised when it ends, and so on while they
   * keep coming.
   */
  count(key: string): boolean;
}

/**
 * One timer at most, unref'd (it never holds the process open), and only while there is
 * something to report: an interval without events ends the summary until the next one.
 */
export function createLogSummary(logger: Logger, options: LogSummaryOptions): LogSummary {
  const { intervalMs, message } = options;
  let timer: NodeJS.Timeout | undefined;
  let count = 0;
  let byKey: Record<string, number> = {};

  function flush(): void {
    if (count === 0) {
      timer = undefined;
      return;
    }
    logger.info({ count, byKey, intervalMs }, message);
    count = 0;
    byKey = {};
    // Another interval: they are still coming.
    timer!.refresh();
  }

  return {
    count(key) {
      if (timer === undefined) {
        timer = setTimeout(flush, intervalMs);
        timer.unref();
        return false;
      }
      count++;
      byKey[key] = (byKey[key] ?? 0) + 1;
      return true;
    },
  };
}
