import type { Dispatcher } from "undici";
import type { ConnectError } from "@connectrpc/connect";

/** Error bodies are read up to this size: enough for any provider message, bounded against abuse. */
export const maxErrorBodyBytes = 64 * 1024;

/** The failure table's errors for an answer, from the client that sent the request. */
export interface AnswerOwner {
  failedAnswer(status: number, headers: Dispatcher.ResponseData["headers"], text: string | undefined): ConnectError;
  networkError(err: unknown, signal: AbortSignal): ConnectError;
}

/** Shared: one options object for every abort listener. */
const onceListener = Object.freeze({ once: true });

/**
 * One upstream request as an undici dispatch handler, and the abort listener on the
 * caller's signal: a class, so a call allocates one object rather than a closure per
 * callback. It does what every answer needs alike — aborts the request at once when the
 * caller's signal aborts (also while still queued in the pool), reads a non-2xx body as far
 * as `maxErrorBodyBytes` and turns it into the failure table's error, and keeps an error
 * answer whose body broke off that error. Subclasses see only a 2xx answer
 * (`answerStarted`, `answerData`, `answerEnded`, `answerBroke`); every other outcome reaches
 * `failed` once.
 * Used by the unary JSON answer (upstream-client.ts) and the streaming answer (stream-answer.ts).
 */
export abstract class AnswerHandler implements Dispatcher.DispatchHandler {
  status = 0;
  headers: Dispatcher.ResponseData["headers"] = {};
  protected controller: Dispatcher.DispatchController | undefined = undefined;
  /** Non-2xx: the error body, bounded. */
  private errorChunks: Buffer[] | undefined = undefined;
  private errorBytes = 0;

  constructor(
    protected readonly owner: AnswerOwner,
    protected readonly signal: AbortSignal,
  ) {
    signal.addEventListener("abort", this, onceListener);
  }

  /** The caller's signal aborted: the upstream request goes at once, wherever it is. */
  handleEvent(): void {
    this.controller?.abort(this.signal.reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Aborted while queued in the pool.
    if (this.signal.aborted) controller.abort(this.signal.reason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.status = statusCode;
    this.headers = headers as Dispatcher.ResponseData["headers"];
    if (statusCode >= 200 && statusCode < 300) this.answerStarted();
    else this.errorChunks = [];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.errorChunks === undefined) return this.answerData(controller, chunk);
    // An error body is read only as far as its message can be.
    if (this.errorBytes < maxErrorBodyBytes) this.errorChunks.push(chunk);
    this.errorBytes += chunk.byteLength;
  }

  onResponseEnd(): void {
    this.finish();
    if (this.errorChunks === undefined) return this.answerEnded();
    const text = Buffer.concat(this.errorChunks, Math.min(this.errorBytes, maxErrorBodyBytes)).toString("utf8");
    this.failed(this.owner.failedAnswer(this.status, this.headers, text));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.finish();
    if (this.status === 0 || (this.errorChunks !== undefined && this.signal.aborted)) {
      return this.failed(this.owner.networkError(err, this.signal));
    }
    // An error answer whose body broke off is still that error.
    if (this.errorChunks !== undefined) return this.failed(this.owner.failedAnswer(this.status, this.headers, undefined));
    this.answerBroke(err);
  }

  /** The request is over: stop listening to the caller. */
  protected finish(): void {
    this.signal.removeEventListener("abort", this);
  }

  /** A 2xx answer's headers arrived. */
  protected abstract answerStarted(): void;
  /** A chunk of a 2xx answer's body. */
  protected abstract answerData(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  /** A 2xx answer's body ended. */
  protected abstract answerEnded(): void;
  /** A 2xx answer's body broke off (socket lost, body timeout, abort). */
  protected abstract answerBroke(err: Error): void;
  /** The request failed before a 2xx answer: its error. */
  protected abstract failed(error: ConnectError): void;
}
