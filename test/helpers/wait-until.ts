import { setTimeout as sleep } from "node:timers/promises";

/**
 * Resolves once `condition()` holds, checking every `everyMs`; rejects after `withinMs`
 * with `what`. For state no event announces (a server's in-flight count); where an event
 * exists, wait on it instead.
 */
export async function waitUntil(condition: () => boolean, what: string, withinMs = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

/** Resolves when `emitter` has emitted `event` `count` times in all (counting from now). */
export function eventCount(
  emitter: { on(event: string, listener: () => void): unknown; off(event: string, listener: () => void): unknown },
  event: string,
  count: number,
): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = (): void => {
      if (++seen < count) return;
      emitter.off(event, listener);
      resolve();
    };
    emitter.on(event, listener);
  });
}
