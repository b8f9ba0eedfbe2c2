import * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { readFileSync } from "node:fs";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import {
  classifyFirstBytes,
  createOnePortListener,
  http2Preface,
  type Http2StreamHandler,
  type NodeRequestHandler,
  type OnePortListener,
  type OnePortListenerOptions,
} from "../../../src/server/one-port-listener.js";
import { createReadSpy, startRechunkingProxy, type RechunkingProxy } from "../../helpers/rechunking-proxy.js";
import { selfSignedCert } from "../../helpers/self-signed-cert.js";

describe("classifyFirstBytes", () => {
  it("waits while the bytes are a prefix of the HTTP/2 preface", () => {
    expect(classifyFirstBytes(Buffer.alloc(0))).toBe("undecided");
    expect(classifyFirstBytes(Buffer.from("P"))).toBe("undecided");
    expect(classifyFirstBytes(http2Preface.subarray(0, 23))).toBe("undecided");
  });

  it("decides HTTP/1.1 at the first byte that differs (POST, PUT, PATCH start with P)", () => {
    expect(classifyFirstBytes(Buffer.from("PO"))).toBe("http1");
    expect(classifyFirstBytes(Buffer.from("PU"))).toBe("http1");
    expect(classifyFirstBytes(Buffer.from("PA"))).toBe("http1");
    expect(classifyFirstBytes(Buffer.from("GET / HTTP/1.1\r\n"))).toBe("http1");
    expect(classifyFirstBytes(Buffer.from("PRI * HTTP/1.1\r\n"))).toBe("http1");
  });

  it("decides HTTP/2 on the whole preface, whatever follows", () => {
    expect(classifyFirstBytes(http2Preface)).toBe("h2");
    expect(classifyFirstBytes(Buffer.concat([http2Preface, Buffer.from([0, 0, 0, 4])]))).toBe("h2");
  });
});

/** Answers "<method> <httpVersion> <body>"; /hold waits until `release()`. */
function echoHandler(): { handler: NodeRequestHandler; release: () => void; held: Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let onHeld!: () => void;
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  const handler: NodeRequestHandler = (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const answer = `${req.method} ${req.httpVersion} ${Buffer.concat(chunks).toString()}`;
      if (req.url === "/hold") {
        onHeld();
        void released.then(() => res.end(answer));
      } else {
        res.end(answer);
      }
    });
  };
  return { handler, release, held };
}

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

async function startListener(
  overrides: Partial<OnePortListenerOptions> & { handler: NodeRequestHandler },
): Promise<{ listener: OnePortListener; port: number }> {
  const listener = createOnePortListener({ headersTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000, ...overrides });
  const { port } = await listener.listen("127.0.0.1", 0);
  opened.push(listener);
  return { listener, port };
}

function h1Request(
  port: number,
  options: { method?: string; path?: string; body?: string; agent?: http.Agent } = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path ?? "/", agent: options.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Resolves with the body of a complete response (status 200 seen, stream ended cleanly). */
function h2Request(session: http2.ClientHttp2Session, path = "/", body = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    stream.on("response", (headers) => (status = headers[":status"]));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("close", () => {
      if (status === 200 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) resolve(Buffer.concat(chunks).toString());
      else reject(new Error(`stream closed: status ${status}, rst ${stream.rstCode}`));
    });
    stream.on("error", () => {});
    stream.end(body);
  });
}

function connectH2(url: string, options: http2.SecureClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(url, options);
  session.on("error", () => {});
  opened.push({ close: () => session.destroy() });
  return session;
}

/** Serves HTTP/2 streams on /raw itself ("raw <body>"), declines the rest. */
const rawStreams: Http2StreamHandler = (stream, headers) => {
  if (headers[":path"] !== "/raw") return false;
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    stream.respond({ ":status": 200 });
    stream.end(`raw ${Buffer.concat(chunks).toString()}`);
  });
  return true;
};

describe("one port, two protocols (cleartext)", () => {
  it("offers each HTTP/2 stream to streamHandler first; the ones it declines reach the request handler", async () => {
    const { port } = await startListener({ handler: echoHandler().handler, streamHandler: rawStreams });
    const session = connectH2(`http://127.0.0.1:${port}`);
    const [raw, compat] = await Promise.all([h2Request(session, "/raw", "one"), h2Request(session, "/", "two")]);
    expect(raw).toBe("raw one");
    expect(compat).toBe("POST 2.0 two");
    // HTTP/1.1 never goes to the stream handler.
    expect((await h1Request(port, { method: "POST", path: "/raw", body: "three" })).body).toBe("POST 1.1 three");
  });

  it("serves HTTP/1.1 and h2c prior knowledge on the same port", async () => {
    const { port } = await startListener({ handler: echoHandler().handler });
    expect((await h1Request(port, { method: "POST", body: "one" })).body).toBe("POST 1.1 one");
    const session = connectH2(`http://127.0.0.1:${port}`);
    expect(await h2Request(session, "/", "two")).toBe("POST 2.0 two");
  });

  it("reassembles an HTTP/2 preface that arrives one byte per read, and in two pieces", async () => {
    const spy = createReadSpy();
    const { port } = await startListener({ handler: echoHandler().handler, onConnection: spy.onConnection });
    for (const pieces of [Array<number>(24).fill(1), [10, 14]]) {
      const proxy: RechunkingProxy = await startRechunkingProxy({ target: { host: "127.0.0.1", port }, pieces, spy });
      opened.push(proxy);
      const session = connectH2(`http://127.0.0.1:${proxy.port}`);
      expect(await h2Request(session, "/", `split ${pieces.length}`)).toBe(`POST 2.0 split ${pieces.length}`);
    }
  });

  it("serves an HTTP/1.1 POST whose first read is the lone byte P", async () => {
    const spy = createReadSpy();
    const { port } = await startListener({ handler: echoHandler().handler, onConnection: spy.onConnection });
    const proxy = await startRechunkingProxy({ target: { host: "127.0.0.1", port }, pieces: [1, 3], spy });
    opened.push(proxy);
    const { body } = await h1Request(proxy.port, { method: "POST", body: "split P", agent: new http.Agent() });
    expect(body).toBe("POST 1.1 split P");
  });

  it("closes a connection that never sends a byte (idle) after the headers timeout", async () => {
    const { port } = await startListener({ handler: echoHandler().handler, headersTimeoutMs: 150 });
    const socket = net.connect(port, "127.0.0.1");
    opened.push({ close: () => socket.destroy() });
    await once(socket, "connect");
    socket.resume();
    await once(socket, "close");
  });

  it("answers 408 and closes an HTTP/1.1 connection whose headers stall (slow headers)", async () => {
    const { port } = await startListener({ handler: echoHandler().handler, headersTimeoutMs: 150 });
    const socket = net.connect(port, "127.0.0.1");
    opened.push({ close: () => socket.destroy() });
    await once(socket, "connect");
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n");
    const received: Buffer[] = [];
    socket.on("data", (c: Buffer) => received.push(c));
    await once(socket, "close");
    expect(Buffer.concat(received).toString()).toMatch(/^HTTP\/1\.1 408/);
  });

  it("closes an HTTP/2 session with no open stream after the keep-alive timeout", async () => {
    const { port } = await startListener({ handler: echoHandler().handler, keepAliveTimeoutMs: 150 });
    const session = connectH2(`http://127.0.0.1:${port}`);
    expect(await h2Request(session)).toBe("POST 2.0 ");
    await once(session, "close");
  });

  it("drain: GOAWAY to HTTP/2 sessions, in-flight requests finish, idle HTTP/1.1 closes, new connections refused", async () => {
    const echo = echoHandler();
    const { listener, port } = await startListener({ handler: echo.handler });

    const agent = new http.Agent({ keepAlive: true });
    opened.push({ close: () => agent.destroy() });
    await h1Request(port, { agent });
    const idleSocket = Object.values(agent.freeSockets)[0]![0]!;
    const idleClosed = once(idleSocket, "close");

    const session = connectH2(`http://127.0.0.1:${port}`);
    const goaway = once(session, "goaway");
    const inFlight = h2Request(session, "/hold", "held");
    await echo.held;

    listener.drain();
    await goaway;
    await idleClosed;
    const refused = new Promise<NodeJS.ErrnoException>((resolve) => {
      net.connect(port, "127.0.0.1").on("error", resolve);
    });
    expect((await refused).code).toBe("ECONNREFUSED");

    echo.release();
    expect(await inFlight).toBe("POST 2.0 held");
    await once(session, "close");
  });

  it("close() destroys every connection, busy ones included", async () => {
    const echo = echoHandler();
    const { listener, port } = await startListener({ handler: echo.handler });
    const session = connectH2(`http://127.0.0.1:${port}`);
    const inFlight = h2Request(session, "/hold");
    await echo.held;
    await listener.close();
    await expect(inFlight).rejects.toThrow();
    expect(listener.connectionCount).toBe(0);
  });
});

describe("one port with TLS", () => {
  it("negotiates h2 and http/1.1 by ALPN; HTTP/2 streams are offered to streamHandler there too", async () => {
    const { certFile, keyFile, remove } = selfSignedCert();
    opened.push({ close: remove });
    const cert = readFileSync(certFile);
    const key = readFileSync(keyFile);
    const { port } = await startListener({ handler: echoHandler().handler, streamHandler: rawStreams, tls: { cert, key } });

    const session = connectH2(`https://127.0.0.1:${port}`, { ca: cert });
    expect(await h2Request(session, "/", "tls")).toBe("POST 2.0 tls");
    expect(await h2Request(session, "/raw", "tls-raw")).toBe("raw tls-raw");

    const h1 = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port, method: "POST", ca: cert, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString()));
      });
      req.on("error", reject);
      req.end("tls1");
    });
    expect(h1).toBe("POST 1.1 tls1");
  });
});
