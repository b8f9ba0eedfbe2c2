import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { sleep } from "./abortable-sleep.js";

function listeners(signal: AbortSignal): number {
  return getEventListeners(signal, "abort").length;
}

describe("sleep (fake timers)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("resolves after exactly ms, not before", async () => {
    vi.useFakeTimers();
    const signal = new AbortController().signal;
    let done = false;
    const p = sleep(1_000, signal).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    await p;
  });

  it("leaves no listener or timer behind after resolving", async () => {
    vi.useFakeTimers();
    const signal = new AbortController().signal;
    const p = sleep(500, signal);
    expect(listeners(signal)).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    await p;
    expect(listeners(signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once when aborted during the wait, and leaves no listener or timer behind", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const p = sleep(60_000, controller.signal);
    const reason = new ConnectError("deadline exceeded", Code.DeadlineExceeded);
    controller.abort(reason);
    // No timer advance: the rejection does not wait for the sleep.
    await expect(p).rejects.toBe(reason);
    expect(listeners(controller.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once when already aborted, without arming a timer or listener", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const reason = new ConnectError("cancelled by caller", Code.Canceled);
    controller.abort(reason);
    const p = sleep(1_000, controller.signal);
    expect(vi.getTimerCount()).toBe(0);
    expect(listeners(controller.signal)).toBe(0);
    await expect(p).rejects.toBe(reason);
  });

  it("wraps a reason that is not a ConnectError as CANCELLED, keeping it as the cause", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const p = sleep(1_000, controller.signal);
    controller.abort(); // reason: a DOMException AbortError
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Canceled);
    expect((err as ConnectError).cause).toBe(controller.signal.reason);
  });

  it("ignores an abort that comes after it resolved", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const p = sleep(10, controller.signal);
    await vi.advanceTimersByTimeAsync(10);
    await expect(p).resolves.toBeUndefined();
    controller.abort();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("does not pile listeners on a long-lived signal over many sleeps", async () => {
    vi.useFakeTimers();
    const signal = new AbortController().signal;
    for (let i = 0; i < 50; i++) {
      const p = sleep(1, signal);
      await vi.advanceTimersByTimeAsync(1);
      await p;
    }
    expect(listeners(signal)).toBe(0);
  });
});

describe("sleep (real timers, tiny and bounded)", () => {
  function activeTimeouts(): number {
    return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
  }

  it("really waits, then leaves no active timer keeping the process alive", async () => {
    const signal = new AbortController().signal;
    const before = activeTimeouts();
    const started = performance.now();
    const p = sleep(5, signal);
    expect(activeTimeouts()).toBe(before + 1);
    await p;
    expect(performance.now() - started).toBeGreaterThanOrEqual(4);
    expect(activeTimeouts()).toBe(before);
    expect(listeners(signal)).toBe(0);
  });

  it("aborted mid-wait: rejects long before the timer and leaves no active timer", async () => {
    const controller = new AbortController();
    const before = activeTimeouts();
    const started = performance.now();
    const p = sleep(10_000, controller.signal);
    setImmediate(() => controller.abort(new ConnectError("gone", Code.Canceled)));
    await expect(p).rejects.toMatchObject({ code: Code.Canceled });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(activeTimeouts()).toBe(before);
    expect(listeners(controller.signal)).toBe(0);
  });
});
