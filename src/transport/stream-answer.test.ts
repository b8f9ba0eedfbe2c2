import { describe, expect, it } from "vitest";
import type { Dispatcher } from "undici";
import { Code, ConnectError } from "@connectrpc/connect";
import { StreamAnswerHandler, type StreamAnswer, type StreamAnswerOwner } from "./stream-answer.js";

/** Records what the handler asks of undici's controller. */
function fakeController() {
  const calls: string[] = [];
  const controller = {
    pause: () => calls.push("pause"),
    resume: () => calls.push("resume"),
    abort: (reason: Error) => calls.push(`abort: ${reason.message}`),
  } as unknown as Dispatcher.DispatchController;
  return { controller, calls };
}

function owner(): StreamAnswerOwner {
  return {
    draining: new Set<StreamAnswer>(),
    failedAnswer: (status, _headers, text) => new ConnectError(`answered ${status}: ${text ?? "(cut)"}`, Code.Unavailable),
    networkError: (err) => new ConnectError(`network: ${(err as Error).message}`, Code.Unavailable),
  };
}

function opened(owner: StreamAnswerOwner, signal = new AbortController().signal) {
  const handler = new StreamAnswerHandler(owner, signal);
  const { controller, calls } = fakeController();
  handler.onRequestStart(controller);
  handler.onResponseStart(controller, 200, { "content-type": "text/event-stream" });
  return { handler, controller, calls };
}

const kib = (n: number) => Buffer.alloc(n * 1024, 0x61);

describe("StreamAnswerHandler", () => {
  it("hands chunks over in order, queued or awaited, then ends", async () => {
    const { handler, controller } = opened(owner());
    expect(await handler.opened).toBe(handler);
    handler.onResponseData(controller, Buffer.from("a"));
    handler.onResponseData(controller, Buffer.from("b"));
    const body = handler.chunks(() => false)[Symbol.asyncIterator]();
    expect(Buffer.from((await body.next()).value as Uint8Array).toString()).toBe("a");
    expect(Buffer.from((await body.next()).value as Uint8Array).toString()).toBe("b");
    const pending = body.next();
    handler.onResponseData(controller, Buffer.from("c"));
    expect(Buffer.from((await pending).value as Uint8Array).toString()).toBe("c");
    const last = body.next();
    handler.onResponseEnd();
    expect((await last).done).toBe(true);
  });

  it("pauses the upstream socket while a slow caller leaves 64 KiB unread, and resumes it below half", async () => {
    const { handler, controller, calls } = opened(owner());
    const body = handler.chunks(() => false)[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) handler.onResponseData(controller, kib(16)); // paused at 64 KiB, 80 queued
    expect(calls).toEqual(["pause"]);
    await body.next(); // 64 KiB left
    await body.next(); // 48
    await body.next(); // 32: not yet below half
    expect(calls).toEqual(["pause"]);
    await body.next(); // 16
    expect(calls).toEqual(["pause", "resume"]);
  });

  it("aborts the upstream request when the consumer stops before the answer is complete", () => {
    const { handler, calls } = opened(owner());
    void handler.chunks(() => false)[Symbol.asyncIterator]().return!();
    expect(calls).toEqual(["abort: the stream's consumer stopped before its end"]);
  });

  it("reads the rest of a complete answer in the background so the socket is kept, and cuts a long one", async () => {
    const clientSide = owner();
    const { handler, controller, calls } = opened(clientSide);
    handler.onResponseData(controller, kib(70)); // queued past the high-water mark: paused
    await handler.chunks(() => true)[Symbol.asyncIterator]().return!();
    expect(calls).toEqual(["pause", "resume"]);
    expect(clientSide.draining.has(handler)).toBe(true);
    handler.onResponseData(controller, kib(8));
    handler.onResponseEnd();
    expect(clientSide.draining.has(handler)).toBe(false);
    expect(calls).toEqual(["pause", "resume"]);

    const long = opened(clientSide);
    await long.handler.chunks(() => true)[Symbol.asyncIterator]().return!();
    for (let i = 0; i < 5; i++) long.handler.onResponseData(long.controller, kib(16));
    expect(long.calls).toEqual(["abort: leftover after the terminal event is too long"]);
  });

  it("delivers what arrived before a cut, then the cut's error", async () => {
    const { handler, controller } = opened(owner());
    const body = handler.chunks(() => false)[Symbol.asyncIterator]();
    handler.onResponseData(controller, Buffer.from("partial"));
    handler.onResponseError(controller, new Error("other side closed"));
    expect(Buffer.from((await body.next()).value as Uint8Array).toString()).toBe("partial");
    await expect(body.next()).rejects.toThrow("other side closed");
  });

  it("rejects the opening with the failure table's error for a non-2xx answer, its body bounded", async () => {
    const handler = new StreamAnswerHandler(owner(), new AbortController().signal);
    const { controller } = fakeController();
    handler.onRequestStart(controller);
    handler.onResponseStart(controller, 429, {});
    handler.onResponseData(controller, Buffer.from('{"error":"slow down"}'));
    handler.onResponseEnd();
    await expect(handler.opened).rejects.toThrow('answered 429: {"error":"slow down"}');
  });

  it("aborts at once when the caller's signal aborts, also while still queued in the pool", async () => {
    const caller = new AbortController();
    const handler = new StreamAnswerHandler(owner(), caller.signal);
    caller.abort(new Error("caller left"));
    const { controller, calls } = fakeController();
    handler.onRequestStart(controller);
    expect(calls).toEqual(["abort: caller left"]);
    handler.onResponseError(controller, new Error("caller left"));
    await expect(handler.opened).rejects.toThrow("network: caller left");
  });
});
