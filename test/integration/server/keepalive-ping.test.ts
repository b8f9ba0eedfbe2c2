import { afterEach, describe, expect, it } from "vitest";
import { createOnePortListener, type Http2StreamHandler } from "../../../src/server/one-port-listener.js";
import { startSluice } from "../../helpers/start-sluice.js";
import {
  dataFrame,
  frame,
  frameFlag,
  frameType,
  headersFrame,
  openRawH2,
  type Frame,
  type RawH2Connection,
} from "../../helpers/raw-h2-frames.js";

/*
 * Issue 15: `server.http2.keepAlivePingMs` — HTTP/2 PINGs on connections with open streams,
 * so a long quiet call survives proxies that drop idle connections, and a peer that stops
 * answering them is closed after `keepAlivePingTimeoutMs` (connection-sweep.ts).
 */

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

/** Serves /hold by never answering (a slow call in progress); declines the rest. */
const holdStreams: Http2StreamHandler = (stream, headers) => {
  if (headers[":path"] !== "/hold") return false;
  stream.on("error", () => {});
  return true;
};

async function startListener(keepAlivePingMs: number, keepAlivePingTimeoutMs = 5_000): Promise<number> {
  const listener = createOnePortListener({
    handler: (_req, res) => res.end("ok"),
    streamHandler: holdStreams,
    headersTimeoutMs: 5_000,
    keepAliveTimeoutMs: 60_000,
    http2: { maxConcurrentStreams: 100, maxSessionMemoryMb: 10, keepAlivePingMs, keepAlivePingTimeoutMs },
  });
  const { port } = await listener.listen("127.0.0.1", 0);
  opened.push(listener);
  return port;
}

const isPing = (f: Frame): boolean => f.type === frameType.ping && (f.flags & frameFlag.ack) === 0;

/** Answers the server's PINGs as a live client does (ACK with the same payload). */
function answerPings(connection: RawH2Connection): void {
  connection.onFrame((f) => {
    if (isPing(f)) connection.write(frame(frameType.ping, frameFlag.ack, 0, f.payload));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("HTTP/2 keep-alive pings", () => {
  it("a connection with an open slow stream is pinged every keepAlivePingMs and stays open while it answers", async () => {
    const port = await startListener(100);
    const connection = await openRawH2(port);
    opened.push({ close: () => connection.destroy() });
    answerPings(connection);
    connection.write(headersFrame(1, "/hold", {}, true));
    await sleep(750);
    const pings = connection.frames.filter(isPing).length;
    expect(pings).toBeGreaterThanOrEqual(4);
    expect(pings).toBeLessThanOrEqual(8);
    expect(connection.socket.destroyed).toBe(false);
  });

  it("an idle connection (no stream) is not pinged; keepAlivePingMs 0 sends none", async () => {
    const idle = await openRawH2(await startListener(100));
    opened.push({ close: () => idle.destroy() });
    const off = await openRawH2(await startListener(0));
    opened.push({ close: () => off.destroy() });
    off.write(headersFrame(1, "/hold", {}, true));
    await sleep(500);
    expect(idle.frames.filter(isPing)).toHaveLength(0);
    expect(off.frames.filter(isPing)).toHaveLength(0);
  });

  it("a peer that does not answer a ping within keepAlivePingTimeoutMs is disconnected", async () => {
    const port = await startListener(100, 200);
    const connection = await openRawH2(port);
    opened.push({ close: () => connection.destroy() });
    connection.write(headersFrame(1, "/hold", {}, true));
    const started = performance.now();
    await connection.closed;
    const elapsed = performance.now() - started;
    expect(connection.frames.filter(isPing).length).toBeGreaterThanOrEqual(1);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2_000);
  });

  it("Sluice: server.http2.keepAlivePingMs pings a slow OpenAI-compatible stream over h2c", async () => {
    const gateway = await startSluice(
      {
        providers: { slow: { type: "demo", wordDelayMs: 0, responseDelayMs: 700 } },
        models: { slow: { deployments: [{ provider: "slow", model: "slow-1" }] } },
      },
      {
        server: {
          sse: { heartbeatMs: 0 },
          http2: { maxConcurrentStreams: 100, maxSessionMemoryMb: 10, keepAlivePingMs: 100, keepAlivePingTimeoutMs: 5_000 },
        } as never,
      },
    );
    opened.push(gateway);
    const connection = await openRawH2(gateway.port);
    opened.push({ close: () => connection.destroy() });
    answerPings(connection);
    const body = Buffer.from(JSON.stringify({ model: "slow", messages: [{ role: "user", content: "hi" }], stream: true }));
    connection.write(headersFrame(1, "/v1/chat/completions", { "content-type": "application/json" }), dataFrame(1, body, true));
    await sleep(600);
    // Nothing but pings yet: the model has not started (the response head is not sent).
    expect(connection.frames.filter(isPing).length).toBeGreaterThanOrEqual(3);
  });
});
