import { Session } from "node:inspector/promises";
import { setTimeout as sleep } from "node:timers/promises";

/** Records CPU profiles on demand, one at a time. */
export interface CpuProfiler {
  /** A profile is being recorded now. */
  readonly busy: boolean;
  /**
   * Samples the main thread's JavaScript stacks for `seconds` and answers the profile as
   * `.cpuprofile` JSON (Chrome DevTools → Performance → Load profile, or VS Code). Aborted
   * by `signal` (the requester left, the admin listener closed): the profiler stops at
   * once and undefined is answered. Throws when one is already running (check `busy`).
   */
  record(seconds: number, signal: AbortSignal): Promise<string | undefined>;
}

/**
 * CPU profiles through node:inspector's in-process Session: no inspector port is opened
 * and nothing listens for a debugger, so profiling costs nothing until asked for. One at a
 * time: two overlapping profiles would each see the other's sampling overhead, and an
 * operator double-clicking must not double the cost on a busy gateway.
 */
export function createCpuProfiler(): CpuProfiler {
  let busy = false;
  return {
    get busy() {
      return busy;
    },
    async record(seconds, signal) {
      if (busy) throw new Error("a CPU profile is already being recorded");
      busy = true;
      const session = new Session();
      session.connect();
      try {
        await session.post("Profiler.enable");
        await session.post("Profiler.start");
        let completed = true;
        try {
          await sleep(seconds * 1000, undefined, { signal });
        } catch {
          completed = false;
        }
        const { profile } = await session.post("Profiler.stop");
        return completed ? JSON.stringify(profile) : undefined;
      } finally {
        // Disconnecting also disables the profiler if stop was never reached.
        session.disconnect();
        busy = false;
      }
    },
  };
}
