import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "./logger.js";
import { createLogSummary } from "./log-summary.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = { write: (line: string) => void lines.push(JSON.parse(line)) };
  return { lines, logger: createLogger({ level: "info", destination }) };
}

describe("log summary", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("first event: the caller logs it; the next ones: one line per interval with counts by key; quiet: no timer", async () => {
    vi.useFakeTimers();
    const { lines, logger } = capture();
    const summary = createLogSummary(logger, { intervalMs: 1_000, message: "things" });
    expect(summary.count("a")).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    for (let i = 0; i < 3; i++) expect(summary.count("a")).toBe(true);
    expect(summary.count("b")).toBe(true);
    expect(lines).toEqual([]);

    await vi.advanceTimersByTimeAsync(1_000);
    expect(lines).toMatchObject([{ msg: "things", count: 4, byKey: { a: 3, b: 1 }, intervalMs: 1_000 }]);
    // An interval with nothing ends it: no line, no timer.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(lines).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    expect(summary.count("a")).toBe(false);
  });

  it("never holds the process open: its timer is unref'd", () => {
    const { logger } = capture();
    const summary = createLogSummary(logger, { intervalMs: 60_000, message: "things" });
    const spy = vi.spyOn(globalThis, "setTimeout");
    try {
      summary.count("a");
      const timer = spy.mock.results[0]!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
      clearTimeout(timer);
    } finally {
      spy.mockRestore();
    }
  });
});
