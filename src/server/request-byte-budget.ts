import { serverOverloadedError } from "./load-shedding.js";
import type { ConnectError } from "@connectrpc/connect";

/**
 * Request bytes being received across the whole process (`server.maxBufferedRequestBytes`):
 * each body a lane reads takes its bytes as they arrive and gives them back when the read
 * settles. Without it memory is bounded only by calls × `maxRequestBytes` (10,000 × 4 MiB),
 * which thousands of slow bodies can approach; with it, the body that would cross the budget
 * is refused (RESOURCE_EXHAUSTED, SERVER_OVERLOADED, retry after 1 s) and the others go on.
 */
export interface RequestByteBudget {
  /** Takes `bytes`, or returns false (taking nothing) when that would cross the budget. */
  take(bytes: number): boolean;
  release(bytes: number): void;
  /** The error a refused body is answered with. */
  readonly overloaded: ConnectError;
  /** Bytes taken now. */
  readonly used: number;
}

export function createRequestByteBudget(maxBytes: number): RequestByteBudget {
  let used = 0;
  return {
    take(bytes) {
      if (used + bytes > maxBytes) return false;
      used += bytes;
      return true;
    },
    release(bytes) {
      used -= bytes;
    },
    overloaded: serverOverloadedError(
      `server overloaded: request bodies being received exceed server.maxBufferedRequestBytes (${maxBytes} bytes); retry later`,
      { maxBufferedRequestBytes: String(maxBytes) },
    ),
    get used() {
      return used;
    },
  };
}
