import { EventEmitter } from "node:events";
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type * as net from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { closingLingerMs, createConnectionSweep, resetBurst, resetsPerSecond, type ConnectionSweep } from "./connection-sweep.js";

/*
 * The sweep's rules on stand-ins for streams, sessions and sockets, with a fake clock: what
 * counts as progress, when a body is late, when a reset flood or a lingering session ends
 * the connection. The same rules over real sockets: test/integration/server/.
 */

const limitMs = 800;

class FakeSocket extends EventEmitter {
  destroyed = false;
  writableLength = 0;
  destroy(): void {
    this.destroyed = true;
  }
}

class FakeSession {
  closed = false;
  destroyed = false;
  close(): void {
    this.closed = true;
  }
}

class FakeStream extends EventEmitter {
  closed = false;
  destroyed = false;
  readableEnded = false;
  endAfterHeaders = false;
  writableLength = 0;
  rstCode = constants.NGHTTP2_NO_ERROR;
  readonly state = { remoteClose: 0 };
  /** Closes as node does: "close" once the RST_STREAM is submitted. */
  close(code: number): void {
    this.rstCode = code;
    this.closed = true;
    this.emit("close");
  }
}

let sweep: ConnectionSweep;
let session: FakeSession;
let socket: FakeSocket;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["performance", "setInterval", "clearInterval"] });
  sweep = createConnectionSweep({ requestBodyTimeoutMs: limitMs, writeStallTimeoutMs: limitMs });
  session = new FakeSession();
  socket = new FakeSocket();
  sweep.watchSession(session as unknown as ServerHttp2Session, socket as unknown as net.Socket);
});
afterEach(() => {
  sweep.stop();
  vi.useRealTimers();
});

function openStream(init: Partial<FakeStream> = {}): FakeStream {
  const stream = Object.assign(new FakeStream(), init);
  sweep.watchStream(session as unknown as ServerHttp2Session, stream as unknown as ServerHttp2Stream);
  return stream;
}

/** Advances the clock by `ms` in steps of a tenth of the limit, sweeping at each. */
function pass(ms: number, each: () => void = () => {}): void {
  for (let t = 0; t < ms; t += limitMs / 10) {
    vi.advanceTimersByTime(limitMs / 10);
    each();
    sweep.sweep();
  }
}

describe("write stall", () => {
  it("bytes queued and never taken: reset after the limit (ENHANCE_YOUR_CALM), not before", () => {
    const stream = openStream({ readableEnded: true, writableLength: 5_000 });
    pass(limitMs / 2);
    expect(stream.closed).toBe(false);
    pass(limitMs);
    expect(stream.rstCode).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  it("a queue that only grows (the call writes on, nothing leaves) is no progress", () => {
    const stream = openStream({ readableEnded: true, writableLength: 100 });
    pass(2 * limitMs, () => (stream.writableLength += 100));
    expect(stream.closed).toBe(true);
  });

  it("a queue that shrinks, however slowly, is progress", () => {
    const stream = openStream({ readableEnded: true, writableLength: 100_000 });
    pass(5 * limitMs, () => (stream.writableLength -= 10));
    expect(stream.closed).toBe(false);
  });

  it("a queue refilled between looks is progress when it drained in between", () => {
    const stream = openStream({ readableEnded: true, writableLength: 16_384 });
    pass(5 * limitMs, () => stream.emit("drain"));
    expect(stream.closed).toBe(false);
  });

  it("nothing queued — a call waiting for its first token — is never a stall", () => {
    const stream = openStream({ readableEnded: true });
    pass(10 * limitMs);
    expect(stream.closed).toBe(false);
  });

  it("HTTP/1.1: a socket whose queued bytes are not taken is destroyed", () => {
    const h1 = new FakeSocket();
    sweep.watchSocket(h1 as unknown as net.Socket);
    h1.writableLength = 1_000_000;
    pass(limitMs + limitMs / 5);
    expect(h1.destroyed).toBe(true);
  });
});

describe("request body", () => {
  it("a request body not ended within the limit: reset", () => {
    const stream = openStream();
    pass(limitMs - limitMs / 10);
    expect(stream.closed).toBe(false);
    pass(limitMs / 5);
    expect(stream.rstCode).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  it("ended (read by the handler, received but unread, or with the headers): never reset for it", () => {
    const read = openStream();
    const unread = openStream();
    const headersOnly = openStream({ endAfterHeaders: true });
    read.readableEnded = true;
    unread.state.remoteClose = 1;
    pass(3 * limitMs);
    expect([read.closed, unread.closed, headersOnly.closed]).toEqual([false, false, false]);
  });
});

describe("reset floods", () => {
  it("a session whose streams are reset faster than the bucket refills is closed", () => {
    for (let i = 0; i < resetBurst - 1; i++) openStream().close(constants.NGHTTP2_CANCEL);
    expect(session.closed).toBe(false);
    openStream().close(constants.NGHTTP2_CANCEL);
    expect(session.closed).toBe(true);
  });

  it("resets at the refill rate, however many in all, never close it; streams that end normally never count", () => {
    for (let i = 0; i < 3 * resetBurst; i++) openStream().close(constants.NGHTTP2_NO_ERROR);
    for (let second = 0; second < 60; second++) {
      for (let i = 0; i < resetsPerSecond - 1; i++) openStream().close(constants.NGHTTP2_CANCEL);
      vi.advanceTimersByTime(1_000);
      sweep.sweep();
    }
    expect(session.closed).toBe(false);
  });
});

describe("closing sessions", () => {
  it("closing with no stream left: its socket is destroyed once the linger time passed", () => {
    session.closed = true;
    sweep.sweep();
    vi.advanceTimersByTime(closingLingerMs - 10);
    sweep.sweep();
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(20);
    sweep.sweep();
    expect(socket.destroyed).toBe(true);
  });

  it("closing with a stream still open: left alone until the stream ends", () => {
    const stream = openStream({ readableEnded: true });
    session.closed = true;
    pass(3 * closingLingerMs);
    expect(socket.destroyed).toBe(false);
    stream.close(constants.NGHTTP2_NO_ERROR);
    pass(closingLingerMs + limitMs / 5);
    expect(socket.destroyed).toBe(true);
  });

  it("an open session with no stream is the keep-alive timeout's business, not the sweep's", () => {
    pass(10 * closingLingerMs);
    expect(socket.destroyed).toBe(false);
  });
});
