/**
 * Calls in progress on the fast lanes — one set for the whole server, shared by every
 * lane — aborted together when the drain deadline passes: one listener on the shutdown
 * signal instead of one per call.
 */
export interface ActiveCalls {
  add(controller: AbortController): void;
  delete(controller: AbortController): void;
}

export function createActiveCalls(shutdownSignal: AbortSignal): ActiveCalls {
  const active = new Set<AbortController>();
  shutdownSignal.addEventListener(
    "abort",
    () => {
      for (const controller of active) controller.abort(shutdownSignal.reason);
    },
    { once: true },
  );
  return {
    add(controller) {
      active.add(controller);
      if (shutdownSignal.aborted) controller.abort(shutdownSignal.reason);
    },
    delete(controller) {
      active.delete(controller);
    },
  };
}
