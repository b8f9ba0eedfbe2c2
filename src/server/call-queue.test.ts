import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createCallQueue, type QueueRefusal, type QueueWaiter } from "./call-queue.js";

/** A waiter that writes what happens to it into `log`. */
function waiter(name: string, log: string[]): QueueWaiter {
  return {
    start: () => log.push(`${name} started`),
    refuse: (reason: QueueRefusal) => log.push(`${name} ${reason}`),
  };
}

describe("createCallQueue", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("starts waiters oldest first, one per admit", () => {
    const queue = createCallQueue({ size: 3, maxWaitMs: 250 });
    const log: string[] = [];
    for (const name of ["a", "b", "c"]) expect(queue.enqueue(waiter(name, log))).toBeDefined();
    expect(queue.length).toBe(3);
    expect(queue.admit()).toBe(true);
    expect(log).toEqual(["a started"]);
    expect(queue.admit()).toBe(true);
    expect(queue.admit()).toBe(true);
    expect(queue.admit()).toBe(false);
    expect(log).toEqual(["a started", "b started", "c started"]);
    expect(queue.length).toBe(0);
  });

  it("holds at most `size` waiters: the next is turned away until one leaves the queue", () => {
    const queue = createCallQueue({ size: 2, maxWaitMs: 250 });
    const log: string[] = [];
    queue.enqueue(waiter("a", log));
    queue.enqueue(waiter("b", log));
    expect(queue.enqueue(waiter("c", log))).toBeUndefined();
    expect(queue.length).toBe(2);
    queue.admit();
    expect(queue.enqueue(waiter("d", log))).toBeDefined();
    queue.admit();
    queue.admit();
    expect(log).toEqual(["a started", "b started", "d started"]);
  });

  it("size 0 is no queue", () => {
    const queue = createCallQueue({ size: 0, maxWaitMs: 250 });
    expect(queue.enqueue(waiter("a", []))).toBeUndefined();
    expect(queue.length).toBe(0);
    expect(queue.admit()).toBe(false);
  });

  it("refuses a waiter after maxWaitMs (queue_timeout), each on its own deadline", () => {
    const queue = createCallQueue({ size: 4, maxWaitMs: 250 });
    const log: string[] = [];
    queue.enqueue(waiter("a", log));
    vi.advanceTimersByTime(100);
    queue.enqueue(waiter("b", log));
    vi.advanceTimersByTime(149);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(["a queue_timeout"]);
    expect(queue.length).toBe(1);
    vi.advanceTimersByTime(100);
    expect(log).toEqual(["a queue_timeout", "b queue_timeout"]);
    expect(queue.length).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a started waiter's timer is cleared: it is never refused later", () => {
    const queue = createCallQueue({ size: 1, maxWaitMs: 250 });
    const log: string[] = [];
    queue.enqueue(waiter("a", log));
    queue.admit();
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual(["a started"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a waiter that leaves (its caller went away) is out at once: not started, not refused, not counted", () => {
    const queue = createCallQueue({ size: 3, maxWaitMs: 250 });
    const log: string[] = [];
    queue.enqueue(waiter("a", log));
    const b = queue.enqueue(waiter("b", log))!;
    queue.enqueue(waiter("c", log));
    b.leave();
    b.leave();
    expect(queue.length).toBe(2);
    vi.advanceTimersByTime(1_000);
    expect(log).toEqual(["a queue_timeout", "c queue_timeout"]);
    // Leaving after the waiter is gone changes nothing.
    b.leave();
    expect(queue.length).toBe(0);
  });

  it("the head and the tail can leave too; the order of the rest holds", () => {
    const queue = createCallQueue({ size: 4, maxWaitMs: 250 });
    const log: string[] = [];
    const a = queue.enqueue(waiter("a", log))!;
    queue.enqueue(waiter("b", log));
    queue.enqueue(waiter("c", log));
    const d = queue.enqueue(waiter("d", log))!;
    a.leave();
    d.leave();
    queue.enqueue(waiter("e", log));
    while (queue.admit());
    expect(log).toEqual(["b started", "c started", "e started"]);
  });

  it("refuseAll refuses every waiter, oldest first (draining), and clears their timers", () => {
    const queue = createCallQueue({ size: 3, maxWaitMs: 250 });
    const log: string[] = [];
    queue.enqueue(waiter("a", log));
    queue.enqueue(waiter("b", log));
    queue.refuseAll();
    expect(log).toEqual(["a draining", "b draining"]);
    expect(queue.length).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
