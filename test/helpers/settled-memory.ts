import { setImmediate as nextTurn } from "node:timers/promises";
import { expect } from "vitest";

export interface MemorySample {
  /** Resident set size, bytes: what the OS sees (native buffers, nghttp2 sessions included). */
  readonly rss: number;
  /** V8 heap in use, bytes. */
  readonly heapUsed: number;
  /** Buffers and other memory V8 tracks outside its heap, bytes. */
  readonly external: number;
}

/** Whether the worker runs with --expose-gc (the hardening project's execArgv). */
export const gcExposed = typeof (globalThis as { gc?: unknown }).gc === "function";

/**
 * This process's memory once garbage has been collected: a full GC (when exposed) a few
 * times, with turns of the event loop between them so sockets closed and streams ended
 * release what they hold (their close callbacks run on later turns). The server under test
 * runs in this process, so this covers it and the test's own clients alike.
 */
export async function settledMemory(): Promise<MemorySample> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) {
    await nextTurn();
    gc?.();
  }
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

const mib = 1024 * 1024;

/** Growth from `before` to `after` in MiB, rounded, for messages. */
export function growthMiB(before: MemorySample, after: MemorySample): { rss: number; heapUsed: number; external: number } {
  const round = (bytes: number): number => Math.round(bytes / mib);
  return {
    rss: round(after.rss - before.rss),
    heapUsed: round(after.heapUsed - before.heapUsed),
    external: round(after.external - before.external),
  };
}

/**
 * How far memory may stay above its level before an attack, once the attack is over and
 * garbage collected. The heap must come back: 64 MiB is far above the noise of a few
 * thousand calls' worth of compiled code and caches, and far below what the attacks held
 * before the fixes (the issue measured ~8.5 KB per idle stream, ~60 KB per slow reader,
 * ~640 B of error per empty message: hundreds of MiB at the issue's counts). RSS rarely
 * returns to the OS whole (allocator arenas keep freed pages), hence a wider 200 MiB: it
 * catches native memory (nghttp2 sessions, socket buffers) that is never released.
 */
export const memoryBoundsMiB = { heapUsed: 64, rss: 200 } as const;

/** Expects memory, settled, back within memoryBoundsMiB of `before` (the growth in the failure message). */
export async function expectMemoryReturned(before: MemorySample): Promise<void> {
  const growth = growthMiB(before, await settledMemory());
  expect(growth.heapUsed, `heap growth after the attack, MiB: ${JSON.stringify(growth)}`).toBeLessThan(memoryBoundsMiB.heapUsed);
  expect(growth.rss, `RSS growth after the attack, MiB: ${JSON.stringify(growth)}`).toBeLessThan(memoryBoundsMiB.rss);
}
