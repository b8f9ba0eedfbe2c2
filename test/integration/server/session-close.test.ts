import * as http2 from "node:http2";
import * as net from "node:net";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { closingLingerMs, resetBurst } from "../../../src/server/connection-sweep.js";
import {
  createOnePortListener,
  type Http2StreamHandler,
  type NodeRequestHandler,
} from "../../../src/server/one-port-listener.js";
import { h2Request } from "../../helpers/raw-http.js";
import {
  frame,
  frameFlag,
  frameType,
  goawayFrame,
  headersFrame,
  rstStreamFrame,
  settingsFrame,
} from "../../helpers/raw-h2-frames.js";

/*
 * Issue 18, finding 8: connections that had seen a GOAWAY stayed open, unread, until the
 * keep-alive timeout (~65 s) — after the caller's GOAWAY when the caller then sits on a
 * half-open connection, and after nghttp2's own GOAWAY to a rapid-reset flood, which node
 * is not told about. Both are closed promptly now; the keep-alive timeout here is a minute,
 * so a close within a test's time is not it.
 */

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

const answer: NodeRequestHandler = (_req, res) => res.end("ok");
/** Serves /hold by never answering (a call in progress); declines the rest. */
const holdStreams: Http2StreamHandler = (stream, headers) => {
  if (headers[":path"] !== "/hold") return false;
  stream.on("error", () => {});
  return true;
};

/** The server side of each accepted connection, and when it closed. */
const serverSockets: Array<{ socket: net.Socket; closed: Promise<void> }> = [];

async function startListener(): Promise<number> {
  serverSockets.length = 0;
  const listener = createOnePortListener({
    handler: answer,
    streamHandler: holdStreams,
    headersTimeoutMs: 5_000,
    keepAliveTimeoutMs: 60_000,
    onConnection: (socket) => serverSockets.push({ socket, closed: once(socket, "close").then(() => {}) }),
  });
  const { port } = await listener.listen("127.0.0.1", 0);
  opened.push(listener);
  return port;
}

/**
 * A client that speaks HTTP/2 frame by frame and keeps its side of the connection open
 * when the server ends its own (allowHalfOpen): it never closes the connection itself.
 * `closed`: the server's side of it closed (this client's would not close on its own).
 */
async function stubbornClient(port: number): Promise<{ closed: Promise<void>; write(...frames: Buffer[]): void }> {
  const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  socket.on("error", () => {});
  opened.push({ close: () => socket.destroy() });
  await once(socket, "connect");
  const closed = serverSockets.at(-1)!.closed;
  socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), settingsFrame([])]));
  // The server's SETTINGS come first: acknowledge them, then read nothing more.
  await once(socket, "data");
  socket.write(frame(frameType.settings, frameFlag.ack, 0));
  socket.resume();
  return { closed, write: (...frames) => void (socket.destroyed || socket.write(Buffer.concat(frames))) };
}

describe("GOAWAY from the caller", () => {
  it("a caller that sends GOAWAY and keeps the connection half-open: closed about a second after its last stream", async () => {
    const client = await stubbornClient(await startListener());
    const started = performance.now();
    client.write(goawayFrame(0, http2.constants.NGHTTP2_NO_ERROR));
    await client.closed;
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(closingLingerMs - 50);
    expect(elapsed).toBeLessThan(closingLingerMs + 2_500);
  });

  it("a stream still open is not cut: the connection waits for it", async () => {
    const port = await startListener();
    const client = await stubbornClient(port);
    client.write(headersFrame(1, "/hold", {}, true), goawayFrame(0, http2.constants.NGHTTP2_NO_ERROR));
    const outcome = await Promise.race([
      client.closed.then(() => "closed"),
      new Promise((resolve) => setTimeout(resolve, closingLingerMs + 1_500, "still open")),
    ]);
    expect(outcome).toBe("still open");
  });
});

describe("rapid reset", () => {
  it("a flood of streams opened and reset at once: the connection is closed promptly, other callers served", async () => {
    const port = await startListener();
    const attacker = await stubbornClient(port);
    const started = performance.now();
    const flood: Buffer[] = [];
    for (let i = 0; i < 3 * resetBurst; i++) {
      const id = 2 * i + 1;
      flood.push(headersFrame(id, "/hold", {}), rstStreamFrame(id, http2.constants.NGHTTP2_CANCEL));
    }
    attacker.write(...flood);
    // Another caller, meanwhile.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    opened.push({ close: () => session.destroy() });
    const other = await h2Request(session, { ":method": "GET", ":path": "/" }, undefined).answer;
    expect(other.body.toString()).toBe("ok");
    await attacker.closed;
    expect(performance.now() - started).toBeLessThan(closingLingerMs + 3_000);
  });

  it("a caller cancelling streams at an ordinary pace keeps its connection", async () => {
    const port = await startListener();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    opened.push({ close: () => session.destroy() });
    await once(session, "remoteSettings");
    for (let round = 0; round < 4; round++) {
      const calls = Array.from({ length: 50 }, () =>
        h2Request(session, { ":method": "POST", ":path": "/hold" }, Buffer.from("x")),
      );
      for (const { stream } of calls) stream.close(http2.constants.NGHTTP2_CANCEL);
      await Promise.all(calls.map((call) => call.answer));
    }
    const after = await h2Request(session, { ":method": "GET", ":path": "/" }, undefined).answer;
    expect(after.body.toString()).toBe("ok");
    expect(session.closed).toBe(false);
  });
});
