import * as http2 from "node:http2";
import * as net from "node:net";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import {
  createOnePortListener,
  type Http2StreamHandler,
  type NodeRequestHandler,
  type OnePortListenerOptions,
} from "../../../src/server/one-port-listener.js";
import { h2Request, http1Request } from "../../helpers/raw-http.js";

/*
 * Issue 18, finding 2: a stream opened with headers and no body lived forever. The
 * listener gives every request `requestBodyTimeoutMs` from its headers to the end of its
 * body: HTTP/2 streams (raw and compatibility) are reset with ENHANCE_YOUR_CALM, HTTP/1.1
 * requests get node's 408. Time spent answering is not bounded by it.
 */

const requestBodyTimeoutMs = 300;

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

/** Reads the whole body, then answers "<body>" after `/slow`'s delay (a model thinking). */
const echo: NodeRequestHandler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const answer = () => res.end(Buffer.concat(chunks).toString());
    if (req.url === "/slow") setTimeout(answer, 3 * requestBodyTimeoutMs);
    else answer();
  });
};

/** The same on a raw stream, for /raw (as the gRPC lane serves). */
const rawEcho: Http2StreamHandler = (stream, headers) => {
  if (headers[":path"] !== "/raw") return false;
  stream.on("error", () => {});
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    if (stream.destroyed) return;
    stream.respond({ ":status": 200 });
    stream.end(Buffer.concat(chunks).toString());
  });
  return true;
};

async function startListener(overrides: Partial<OnePortListenerOptions> = {}): Promise<number> {
  const listener = createOnePortListener({
    handler: echo,
    streamHandler: rawEcho,
    headersTimeoutMs: 5_000,
    keepAliveTimeoutMs: 5_000,
    requestBodyTimeoutMs,
    connectionsCheckingIntervalMs: 50,
    ...overrides,
  });
  const { port } = await listener.listen("127.0.0.1", 0);
  opened.push(listener);
  return port;
}

async function connect(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  opened.push({ close: () => session.destroy() });
  await once(session, "remoteSettings");
  return session;
}

describe("HTTP/2: request body timeout", () => {
  it.each(["/raw", "/compat"])(
    "%s: headers and no body: the stream is reset (ENHANCE_YOUR_CALM) after the timeout",
    async (path) => {
      const session = await connect(await startListener());
      const started = performance.now();
      const { answer } = h2Request(session, { ":method": "POST", ":path": path }, "open");
      const { status, rstCode } = await answer;
      const elapsed = performance.now() - started;
      expect(status).toBeUndefined();
      expect(rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(elapsed).toBeGreaterThanOrEqual(requestBodyTimeoutMs);
      // Checked by a sweep every eighth of the limit: it fires within the limit and a sweep.
      expect(elapsed).toBeLessThan(requestBodyTimeoutMs + 1_000);
      // The connection serves on.
      const next = await h2Request(session, { ":method": "POST", ":path": path }, Buffer.from("next")).answer;
      expect(next.body.toString()).toBe("next");
    },
  );

  it("a body that trickles is reset too: the limit is for the whole body, not between its bytes", async () => {
    const session = await connect(await startListener());
    const { stream, answer } = h2Request(session, { ":method": "POST", ":path": "/raw" }, "open");
    const trickle = setInterval(() => stream.write("."), requestBodyTimeoutMs / 6);
    try {
      expect((await answer).rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } finally {
      clearInterval(trickle);
    }
  });

  it("a body that ended in time, answered after the limit (a model thinking): not reset", async () => {
    const session = await connect(await startListener());
    const answer = await h2Request(session, { ":method": "POST", ":path": "/slow" }, Buffer.from("thought")).answer;
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe("thought");
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("a GET (END_STREAM on its headers) is never timed out for its body", async () => {
    const session = await connect(await startListener());
    const answer = await h2Request(session, { ":method": "GET", ":path": "/slow" }, undefined).answer;
    expect(answer.status).toBe(200);
  });
});

describe("HTTP/1.1: request body timeout", () => {
  it("a request that ended in time, answered after the limit: served", async () => {
    const port = await startListener({ headersTimeoutMs: requestBodyTimeoutMs / 2 });
    const answer = await http1Request(port, { method: "POST", path: "/slow", body: "thought" });
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe("thought");
  });

  it("a body that never completes gets 408 and the connection is closed", async () => {
    // Node's request timeout is never shorter than its headers timeout.
    const port = await startListener({ headersTimeoutMs: requestBodyTimeoutMs / 2 });
    const socket = net.connect(port, "127.0.0.1");
    opened.push({ close: () => socket.destroy() });
    await once(socket, "connect");
    const started = performance.now();
    socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    const received: Buffer[] = [];
    socket.on("data", (c: Buffer) => received.push(c));
    await once(socket, "close");
    expect(Buffer.concat(received).toString()).toMatch(/^HTTP\/1\.1 408/);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(requestBodyTimeoutMs - 5);
    expect(elapsed).toBeLessThan(requestBodyTimeoutMs + 1_000);
  });
});
