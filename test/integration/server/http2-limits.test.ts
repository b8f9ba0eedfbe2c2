import * as http from "node:http";
import * as http2 from "node:http2";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import {
  createOnePortListener,
  listenerDefaults,
  type Http2StreamHandler,
  type NodeRequestHandler,
  type OnePortListenerOptions,
} from "../../../src/server/one-port-listener.js";
import { h2Request } from "../../helpers/raw-http.js";
import { headersFrame, openRawH2 } from "../../helpers/raw-h2-frames.js";

/*
 * The HTTP/2 limits the listener sets explicitly instead of node's defaults (README
 * "Limits"): SETTINGS_MAX_CONCURRENT_STREAMS (node advertises none) and a header list
 * limit, both advertised and enforced, and the same header limit for HTTP/1.1.
 */

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

const answerOk: NodeRequestHandler = (_req, res) => res.end("ok");

async function startListener(overrides: Partial<OnePortListenerOptions> = {}): Promise<number> {
  const listener = createOnePortListener({ handler: answerOk, headersTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000, ...overrides });
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

describe("HTTP/2 SETTINGS", () => {
  it("advertises the stream limit and header list limit (defaults: 100 streams, 16 KiB)", async () => {
    const session = await connect(await startListener());
    expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    expect(session.remoteSettings.maxHeaderListSize).toBe(16 * 1024);
    expect(listenerDefaults.http2.maxConcurrentStreams).toBe(100);
  });

  it("advertises configured values", async () => {
    const port = await startListener({ http2: { maxConcurrentStreams: 7, maxSessionMemoryMb: 5 }, maxHeaderBytes: 4096 });
    const session = await connect(port);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
    expect(session.remoteSettings.maxHeaderListSize).toBe(4096);
  });
});

describe("streams per connection", () => {
  it("a client that ignores the advertised limit: no more than the limit reach the server, and the connection is closed", async () => {
    const held: http2.ServerHttp2Stream[] = [];
    // Holds every stream open: never answers.
    const hold: Http2StreamHandler = (stream) => {
      // The session ends with a protocol error, which every open stream then emits.
      stream.on("error", () => {});
      held.push(stream);
      return true;
    };
    const port = await startListener({ streamHandler: hold, http2: { maxConcurrentStreams: 10, maxSessionMemoryMb: 10 } });
    const attacker = await openRawH2(port);
    opened.push({ close: () => attacker.destroy() });
    // Having acknowledged the server's SETTINGS, it opens 30 streams at once.
    attacker.write(...Array.from({ length: 30 }, (_, i) => headersFrame(2 * i + 1, "/x", {})));
    // nghttp2 treats the excess as a connection error (RFC 9113 §5.1.2): the session is
    // destroyed, and the streams it held with it.
    await attacker.closed;
    expect(held.length).toBe(10);
    await Promise.all(held.map((stream) => (stream.closed ? undefined : once(stream, "close"))));
  });
});

describe("header list size", () => {
  it("HTTP/2: a request whose headers exceed the limit is reset (ENHANCE_YOUR_CALM) and never reaches the handler", async () => {
    let reached = 0;
    const port = await startListener({
      handler: (_req, res) => {
        reached++;
        res.end("ok");
      },
      maxHeaderBytes: 4096,
    });
    const session = await connect(port);
    const big = h2Request(session, { ":method": "GET", ":path": "/", "x-big": "a".repeat(6000) }, undefined);
    const small = h2Request(session, { ":method": "GET", ":path": "/", "x-small": "a".repeat(2000) }, undefined);
    const [bigAnswer, smallAnswer] = await Promise.all([big.answer, small.answer]);
    expect(bigAnswer.status).toBeUndefined();
    expect(bigAnswer.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(smallAnswer.status).toBe(200);
    expect(reached).toBe(1);
  });

  it("HTTP/1.1: headers over the limit get 431", async () => {
    const port = await startListener({ maxHeaderBytes: 4096 });
    const status = (headers: http.OutgoingHttpHeaders) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path: "/", headers, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await status({ "x-big": "a".repeat(6000) })).toBe(431);
    expect(await status({ "x-small": "a".repeat(2000) })).toBe(200);
  });
});
