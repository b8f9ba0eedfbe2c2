import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { abortError } from "../errors/abort-error.js";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";

/** How a flight was served at its source: from the cache (or an idempotency record), upstream, or upstream on request. */
export type FlightSource = "hit" | "miss" | "bypass";

/**
 * One unary call shared by every identical caller in flight. The work runs under the
 * flight's own signal, aborted only when every caller has left; a failure reaches all.
 */
export class UnaryFlight<T> {
  readonly controller = new AbortController();
  private waiters = 0;
  private settled = false;
  readonly result: Promise<T>;

  constructor(work: (signal: AbortSignal) => Promise<T>) {
    this.result = work(this.controller.signal).finally(() => {
      this.settled = true;
    });
    // Nobody may be left to read a failure (everyone cancelled): not an unhandled rejection.
    this.result.catch(() => {});
  }

  /** The result for one caller: its own signal ends its wait (and the flight's, when it was the last). */
  async join(signal: AbortSignal): Promise<T> {
    this.waiters++;
    if (signal.aborted) {
      this.leave(signal);
      throw abortError(signal);
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([this.result, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort!);
      this.leave(signal);
    }
  }

  private leave(signal: AbortSignal): void {
    if (--this.waiters === 0 && !this.settled) this.controller.abort(signal.reason);
  }
}

/**
 * One stream shared by every identical caller in flight (fan-out). Every event is kept in
 * order (a caller that joins late starts from the first); each caller reads at its own pace
 * through its own cursor. A caller more than `lagEvents` behind the newest event (counted
 * from when it joined) fails with RESOURCE_EXHAUSTED, COALESCED_STREAM_LAGGING; while every
 * caller is that far behind, the upstream stream is not read (its own backpressure). A
 * caller leaving does not stop the others; the last one leaving aborts the upstream call.
 */
export class StreamFlight {
  readonly controller = new AbortController();
  readonly events: StreamCompleteResponse[] = [];
  private readonly readers = new Set<FlightReader>();
  private ended = false;
  private error: unknown = undefined;
  private resumePump: (() => void) | undefined = undefined;
  /** Set by the source before its first event: how the flight is served. */
  source: FlightSource = "miss";
  /** Resolves once the source has ended (finished, failed or aborted) and was closed: the upstream call is over. */
  readonly done: Promise<void>;

  constructor(
    private readonly lagEvents: number,
    produce: (signal: AbortSignal) => AsyncIterable<StreamCompleteResponse>,
  ) {
    this.done = this.pump(produce(this.controller.signal));
  }

  get finished(): boolean {
    return this.ended;
  }

  private async pump(source: AsyncIterable<StreamCompleteResponse>): Promise<void> {
    const iterator = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (this.controller.signal.aborted) break;
        while (this.readers.size > 0 && this.allBehind()) {
          await new Promise<void>((resolve) => (this.resumePump = resolve));
          this.resumePump = undefined;
        }
        if (this.controller.signal.aborted) break;
        const next = await iterator.next();
        if (next.done) break;
        this.events.push(next.value);
        for (const reader of this.readers) {
          if (reader.lag() > this.lagEvents) reader.fail(lagging(this.lagEvents));
          else reader.wake();
        }
      }
    } catch (err) {
      this.error = err;
    } finally {
      this.ended = true;
      for (const reader of this.readers) reader.wake();
      try {
        await iterator.return?.(undefined);
      } catch {
        // the source is done either way
      }
    }
  }

  private allBehind(): boolean {
    for (const reader of this.readers) if (reader.lag() < this.lagEvents) return false;
    return true;
  }

  /** A reader from the first event; `signal`: its caller's. */
  join(signal: AbortSignal): FlightReader {
    const reader = new FlightReader(this, signal, this.events.length);
    this.readers.add(reader);
    return reader;
  }

  /** @internal */
  state(): { ended: boolean; error: unknown } {
    return { ended: this.ended, error: this.error };
  }

  /** @internal A reader left (done, failed, cancelled). */
  leave(reader: FlightReader, reason: unknown): void {
    if (!this.readers.delete(reader)) return;
    if (this.readers.size === 0 && !this.ended) this.controller.abort(reason);
    else this.resumePump?.();
  }

  /** @internal A reader consumed: the pump may go on. */
  progressed(): void {
    this.resumePump?.();
  }
}

export class FlightReader implements AsyncIterator<StreamCompleteResponse> {
  private index = 0;
  private failure: ConnectError | undefined = undefined;
  private waiting: (() => void) | undefined = undefined;
  private readonly onAbort = () => {
    this.flight.leave(this, this.signal.reason);
    this.wake();
  };

  constructor(
    private readonly flight: StreamFlight,
    private readonly signal: AbortSignal,
    private readonly joinedAt: number,
  ) {
    signal.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Events that arrived since it joined and it has not read. */
  lag(): number {
    return this.flight.events.length - Math.max(this.index, this.joinedAt);
  }

  fail(error: ConnectError): void {
    this.failure = error;
    this.flight.leave(this, error);
    this.wake();
  }

  wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  async next(): Promise<IteratorResult<StreamCompleteResponse>> {
    for (;;) {
      if (this.signal.aborted) throw abortError(this.signal);
      if (this.failure !== undefined) throw this.failure;
      const events = this.flight.events;
      if (this.index < events.length) {
        const event = events[this.index++]!;
        this.flight.progressed();
        return { done: false, value: event };
      }
      const { ended, error } = this.flight.state();
      if (ended) {
        this.close();
        if (error !== undefined) throw ConnectError.from(error);
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  async return(): Promise<IteratorResult<StreamCompleteResponse>> {
    this.close();
    return { done: true, value: undefined };
  }

  private close(): void {
    this.signal.removeEventListener("abort", this.onAbort);
    this.flight.leave(this, abortReason(this.signal));
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.aborted ? signal.reason : new ConnectError("every caller left", Code.Canceled);
}

function lagging(limit: number): ConnectError {
  return gatewayError(
    Code.ResourceExhausted,
    reasons.coalescedStreamLagging,
    `this stream shares one upstream call with identical calls and fell more than ${limit} events behind the fastest of them (cache.streamLagEvents); read faster or send CacheControl.bypass`,
  );
}
