import type { Dispatcher } from "undici";
import type { ConnectError } from "@connectrpc/connect";

/** Error bodies are read up to this size: enough for any provider message, bounded against abuse. */
export const maxErrorBodyBytes = 64 * 1024;
/** The most a finished stream's leftover is read for: past it, closing the socket is cheaper. */
const maxDrainBytes = 64 * 1024;
/** Unread bytes past which the upstream socket is paused (a slow caller), and resumed below half. */
const highWaterBytes = 64 * 1024;

/** What a stream answer needs from its client: the failure table's errors, and the set of bodies being drained. */
export interface StreamAnswerOwner {
  failedAnswer(status: number, headers: Dispatcher.ResponseData["headers"], text: string | undefined): ConnectError;
  networkError(err: unknown, signal: AbortSignal): ConnectError;
  readonly draining: Set<StreamAnswer>;
}

/** A 2xx streaming answer: its headers, and its body read chunk by chunk as it arrives. */
export interface StreamAnswer {
  readonly status: number;
  readonly headers: Dispatcher.ResponseData["headers"];
  /**
   * The body, for one consumer. Stopping before `isComplete()` aborts the upstream request at
   * once (the caller is gone: no tokens paid for nobody); stopping after it — at `[DONE]`,
   * where the HTTP response has usually but not always ended — reads the rest in the
   * background, so the keep-alive socket goes back to the pool instead of being closed.
   */
  chunks(isComplete: () => boolean): AsyncIterable<Uint8Array>;
  /** The whole body as text (a JSON error answered where a stream was asked for). */
  text(): Promise<string>;
  /** Aborts the upstream request unless it already ended. */
  destroy(): void;
}

/** Shared: one options object for every abort listener. */
const onceListener = Object.freeze({ once: true });
const doneResult: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * One streaming upstream call as an undici dispatch handler — and its body's async
 * iterator, and the abort listener on the caller's signal: one object per stream instead of
 * `pool.request`'s request wrapper, Readable body, its async iterator and end-of-stream
 * listeners (~3 KB a stream held open, and a Readable push, event and promise per chunk).
 * `opened` settles when the answer's headers arrive: with this object for a 2xx answer,
 * else with the failure table's error (its body read as far as `maxErrorBodyBytes`).
 * Tests: the OpenAI and Anthropic provider suites (replay, cuts, cancel, keep-alive reuse,
 * slow readers) and upstream-client.test.ts.
 */
export class StreamAnswerHandler implements Dispatcher.DispatchHandler, StreamAnswer, AsyncIterator<Uint8Array> {
  readonly opened: Promise<StreamAnswerHandler>;
  status = 0;
  headers: Dispatcher.ResponseData["headers"] = {};
  private resolveOpen!: (answer: StreamAnswerHandler) => void;
  private rejectOpen!: (error: unknown) => void;
  private controller: Dispatcher.DispatchController | undefined = undefined;
  /** Chunks that arrived before the consumer asked for them. */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  /** The consumer's pending `next()`. */
  private waiting: { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: unknown) => void } | undefined = undefined;
  private ended = false;
  private failure: unknown = undefined;
  /** The consumer stopped: what still arrives is read and dropped (draining) or the request was aborted. */
  private stopped = false;
  private drainedBytes = 0;
  private isComplete: () => boolean = () => false;
  /** Non-2xx: the error body, bounded. */
  private errorChunks: Buffer[] | undefined = undefined;
  private errorBytes = 0;

  constructor(
    private readonly owner: StreamAnswerOwner,
    private readonly signal: AbortSignal,
  ) {
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpen = resolve;
      this.rejectOpen = reject;
    });
    signal.addEventListener("abort", this, onceListener);
  }

  /** The caller's signal aborted: the upstream request goes at once, wherever it is. */
  handleEvent(): void {
    this.controller?.abort(this.signal.reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Aborted (or given up) while queued in the pool.
    if (this.signal.aborted) controller.abort(this.signal.reason);
    else if (this.stopped) this.abortUpstream();
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.status = statusCode;
    this.headers = headers as Dispatcher.ResponseData["headers"];
    if (statusCode >= 200 && statusCode < 300) this.resolveOpen(this);
    else this.errorChunks = [];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.errorChunks !== undefined) {
      if (this.errorBytes < maxErrorBodyBytes) this.errorChunks.push(chunk);
      this.errorBytes += chunk.byteLength;
      return;
    }
    if (this.stopped) {
      this.drainedBytes += chunk.byteLength;
      if (this.drainedBytes > maxDrainBytes) controller.abort(new Error("leftover after the terminal event is too long"));
      return;
    }
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      waiting.resolve({ done: false, value: chunk });
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    if (this.queuedBytes >= highWaterBytes && !this.paused) {
      this.paused = true;
      controller.pause();
    }
  }

  onResponseEnd(): void {
    this.finish();
    if (this.errorChunks !== undefined) {
      const text = Buffer.concat(this.errorChunks, Math.min(this.errorBytes, maxErrorBodyBytes)).toString("utf8");
      this.rejectOpen(this.owner.failedAnswer(this.status, this.headers, text));
      return;
    }
    this.ended = true;
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      waiting.resolve(doneResult);
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.finish();
    if (this.status === 0) {
      this.rejectOpen(this.owner.networkError(err, this.signal));
      return;
    }
    if (this.errorChunks !== undefined) {
      // An error answer whose body broke off is still that error (unless the caller left).
      this.rejectOpen(this.signal.aborted ? this.owner.networkError(err, this.signal) : this.owner.failedAnswer(this.status, this.headers, undefined));
      return;
    }
    this.failure = err;
    const waiting = this.waiting;
    if (waiting !== undefined) {
      this.waiting = undefined;
      waiting.reject(err);
    }
  }

  // ---- the body, for its one consumer ----

  chunks(isComplete: () => boolean): AsyncIterable<Uint8Array> {
    this.isComplete = isComplete;
    return this;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.queuedBytes -= chunk.byteLength;
      if (this.paused && this.queuedBytes < highWaterBytes / 2) {
        this.paused = false;
        this.controller?.resume();
      }
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended || this.stopped) return Promise.resolve(doneResult);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.stop();
    return Promise.resolve(doneResult);
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for (let next = await this.next(); next.done !== true; next = await this.next()) chunks.push(next.value as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  destroy(): void {
    if (this.ended || this.failure !== undefined) return;
    this.stopped = true;
    this.isComplete = () => false;
    this.abortUpstream();
  }

  /** The consumer is done with the body: drain a finished answer, abort an unfinished one. */
  private stop(): void {
    if (this.stopped || this.ended || this.failure !== undefined) return;
    this.stopped = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (!this.isComplete()) {
      this.abortUpstream();
      return;
    }
    this.owner.draining.add(this);
    if (this.paused) {
      this.paused = false;
      this.controller?.resume();
    }
  }

  private abortUpstream(): void {
    const reason = new Error("the stream's consumer stopped before its end");
    if (this.controller !== undefined) this.controller.abort(reason);
  }

  /** The request is over: stop listening to the caller and leave the draining set. */
  private finish(): void {
    this.signal.removeEventListener("abort", this);
    this.owner.draining.delete(this);
  }
}
