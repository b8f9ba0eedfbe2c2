import type { Dispatcher } from "undici";
import type { ConnectError } from "@connectrpc/connect";
import { AnswerHandler, type AnswerOwner } from "./answer-handler.js";

/** The most a finished stream's leftover is read for: past it, closing the socket is cheaper. */
const maxDrainBytes = 64 * 1024;
/** Unread bytes past which the upstream socket is paused (a slow caller), and resumed below half. */
const highWaterBytes = 64 * 1024;

/** What a stream answer needs from its client: the failure table's errors, and the set of bodies being drained. */
export interface StreamAnswerOwner extends AnswerOwner {
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

const doneResult: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

type Waiting = { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: unknown) => void };

/**
 * One streaming upstream call as an undici dispatch handler (answer-handler.ts: abort,
 * error answers) — and its body's async iterator: one object per stream instead of
 * `pool.request`'s request wrapper, Readable body, its async iterator and end-of-stream
 * listeners (memory held for as long as a stream is open, and a Readable push, event and
 * promise per chunk).
 * `opened` settles when the answer's headers arrive: with this object for a 2xx answer,
 * else with the failure table's error.
 * Tests: stream-answer.test.ts, and the OpenAI and Anthropic provider suites (replay, cuts,
 * cancel, keep-alive reuse).
 */
export class StreamAnswerHandler extends AnswerHandler implements StreamAnswer, AsyncIterator<Uint8Array> {
  readonly opened: Promise<StreamAnswerHandler>;
  private resolveOpen!: (answer: StreamAnswerHandler) => void;
  private rejectOpen!: (error: unknown) => void;
  /** Chunks that arrived before the consumer asked for them. */
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private paused = false;
  /** The consumer's pending `next()`. */
  private waiting: Waiting | undefined = undefined;
  private ended = false;
  private failure: unknown = undefined;
  /** The consumer stopped: what still arrives is read and dropped (draining) or the request was aborted. */
  private stopped = false;
  private drainedBytes = 0;
  private isComplete: () => boolean = () => false;

  constructor(
    protected override readonly owner: StreamAnswerOwner,
    signal: AbortSignal,
  ) {
    super(owner, signal);
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpen = resolve;
      this.rejectOpen = reject;
    });
  }

  override onRequestStart(controller: Dispatcher.DispatchController): void {
    super.onRequestStart(controller);
    // Given up while queued in the pool.
    if (!this.signal.aborted && this.stopped) this.abortUpstream();
  }

  protected answerStarted(): void {
    this.resolveOpen(this);
  }

  protected answerData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.stopped) {
      this.drainedBytes += chunk.byteLength;
      if (this.drainedBytes > maxDrainBytes) controller.abort(new Error("leftover after the terminal event is too long"));
      return;
    }
    const waiting = this.takeWaiting();
    if (waiting !== undefined) return waiting.resolve({ done: false, value: chunk });
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    if (this.queuedBytes >= highWaterBytes && !this.paused) {
      this.paused = true;
      controller.pause();
    }
  }

  protected answerEnded(): void {
    this.ended = true;
    this.takeWaiting()?.resolve(doneResult);
  }

  protected answerBroke(err: Error): void {
    this.failure = err;
    this.takeWaiting()?.reject(err);
  }

  protected failed(error: ConnectError): void {
    this.rejectOpen(error);
  }

  /** The request is over: out of the draining set too. */
  protected override finish(): void {
    super.finish();
    this.owner.draining.delete(this);
  }

  /** The consumer's pending read, handed over once. */
  private takeWaiting(): Waiting | undefined {
    const waiting = this.waiting;
    this.waiting = undefined;
    return waiting;
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
}
