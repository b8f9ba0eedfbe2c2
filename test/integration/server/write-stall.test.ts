import * as http2 from "node:http2";
import * as net from "node:net";
import { once } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import type { DemoProvider } from "../../../src/providers/demo/demo-provider.js";
import {
  createOnePortListener,
  type Http2StreamHandler,
  type NodeRequestHandler,
  type OnePortListenerOptions,
} from "../../../src/server/one-port-listener.js";
import { envelope, grpcHeaders, h2Request } from "../../helpers/raw-http.js";
import { frame, frameFlag, frameType, headersFrame, openRawH2, settingId } from "../../helpers/raw-h2-frames.js";
import { startSluice } from "../../helpers/start-sluice.js";
import { waitUntil } from "../../helpers/wait-until.js";

/*
 * Issue 18, finding 4: a stream whose reader never opened its flow-control window lived
 * forever with its answer queued. A response whose queued bytes the caller does not take
 * for `writeStallTimeoutMs` is reset (HTTP/2) or its connection closed (HTTP/1.1), and the
 * call's signal fires. A reader that takes bytes slowly, and a call that has nothing to
 * send yet (a model thinking), are left alone.
 */

const writeStallTimeoutMs = 300;
const megabyte = Buffer.alloc(1024 * 1024, "x");

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

/** What a served stream or response saw: closed before its answer was fully taken, or finished. */
interface Served {
  readonly outcome: Promise<"closed early" | "finished">;
}

type Out = NodeJS.WritableStream & { readonly destroyed: boolean };

/** Resolves when `out` takes more ("drain") or is gone ("close"), as the lanes wait. */
function drainedOrClosed(out: Out): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off("drain", done);
      out.off("close", done);
      resolve();
    };
    out.on("drain", done);
    out.on("close", done);
  });
}

/** Writes `total` bytes of answer in 16 KiB pieces, respecting backpressure as the lanes do. */
async function writeAll(out: Out, total: number): Promise<void> {
  for (let sent = 0; sent < total && !out.destroyed; sent += 16 * 1024) {
    if (!out.write(megabyte.subarray(0, 16 * 1024))) await drainedOrClosed(out);
  }
  if (!out.destroyed) out.end();
}

function rawWriter(total: number): { handler: Http2StreamHandler; served: Served[] } {
  const served: Served[] = [];
  const handler: Http2StreamHandler = (stream) => {
    stream.on("error", () => {});
    const outcome = new Promise<"closed early" | "finished">((resolve) => {
      stream.once("close", () => resolve(stream.writableFinished ? "finished" : "closed early"));
    });
    served.push({ outcome });
    stream.respond({ ":status": 200 });
    void writeAll(stream, total);
    return true;
  };
  return { handler, served };
}

async function startListener(overrides: Partial<OnePortListenerOptions> & { handler: NodeRequestHandler }): Promise<number> {
  const listener = createOnePortListener({
    headersTimeoutMs: 5_000,
    keepAliveTimeoutMs: 5_000,
    writeStallTimeoutMs,
    ...overrides,
  });
  const { port } = await listener.listen("127.0.0.1", 0);
  opened.push(listener);
  return port;
}

async function connect(port: number, settings: http2.Settings = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings });
  session.on("error", () => {});
  opened.push({ close: () => session.destroy() });
  await once(session, "remoteSettings");
  return session;
}

const unused: NodeRequestHandler = (_req, res) => res.end();

describe("HTTP/2 slow readers", () => {
  it("a reader that never opens its window: reset (ENHANCE_YOUR_CALM) after the limit, and the server sees the stream close", async () => {
    const raw = rawWriter(megabyte.length);
    const port = await startListener({ handler: unused, streamHandler: raw.handler });
    const session = await connect(port, { initialWindowSize: 0 });
    const started = performance.now();
    const { answer } = h2Request(session, { ":method": "GET", ":path": "/" }, undefined);
    const { status, body, rstCode } = await answer;
    const elapsed = performance.now() - started;
    expect(status).toBe(200);
    expect(body.length).toBe(0);
    expect(rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(await raw.served[0]!.outcome).toBe("closed early");
    expect(elapsed).toBeGreaterThanOrEqual(writeStallTimeoutMs);
    expect(elapsed).toBeLessThan(writeStallTimeoutMs + 1_000);
  });

  it("a reader that takes its answer slowly, a window update at a time, for longer than the limit: served whole", async () => {
    const total = 48 * 1024;
    const raw = rawWriter(total);
    const port = await startListener({ handler: unused, streamHandler: raw.handler });
    // No window at first; then 6 KiB more every sixth of the limit: the answer takes 8 of those,
    // longer than the limit, and each 16 KiB write is taken within half of it.
    const reader = await openRawH2(port, [[settingId.initialWindowSize, 0]]);
    opened.push({ close: () => reader.destroy() });
    let received = 0;
    const ended = new Promise<void>((resolve) =>
      reader.onFrame((f) => {
        if (f.streamId !== 1) return;
        if (f.type === frameType.data) received += f.payload.length;
        if ((f.type === frameType.data || f.type === frameType.headers) && (f.flags & frameFlag.endStream) !== 0) resolve();
        if (f.type === frameType.rstStream) resolve();
      }),
    );
    const started = performance.now();
    reader.write(headersFrame(1, "/", {}, true));
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(6 * 1024);
    const grant = setInterval(() => reader.write(frame(frameType.windowUpdate, 0, 1, increment)), writeStallTimeoutMs / 6);
    try {
      await ended;
      expect(received).toBe(total);
      // Never reset with an error (node may end a finished stream with RST_STREAM NO_ERROR).
      const resets = reader.frames.filter((f) => f.type === frameType.rstStream).map((f) => f.payload.readUInt32BE(0));
      expect(resets.every((code) => code === http2.constants.NGHTTP2_NO_ERROR)).toBe(true);
      expect(performance.now() - started).toBeGreaterThan(writeStallTimeoutMs);
      expect(await raw.served[0]!.outcome).toBe("finished");
    } finally {
      clearInterval(grant);
    }
  });
});

describe("HTTP/1.1 slow readers", () => {
  it("a client that never reads its socket: the connection is closed after the limit", async () => {
    const served: Served[] = [];
    const handler: NodeRequestHandler = (_req, res) => {
      const outcome = new Promise<"closed early" | "finished">((resolve) => {
        res.once("close", () => resolve(res.writableFinished ? "finished" : "closed early"));
      });
      served.push({ outcome });
      res.writeHead(200);
      // 64 MB: more than the kernel's socket buffers can hide, so bytes queue in the process.
      void writeAll(res as unknown as Out, 64 * megabyte.length);
    };
    const port = await startListener({ handler });
    const socket = net.connect(port, "127.0.0.1");
    opened.push({ close: () => socket.destroy() });
    await once(socket, "connect");
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    socket.pause();
    await waitUntil(() => served.length === 1, "the request reached the handler");
    expect(await served[0]!.outcome).toBe("closed early");
  });
});

describe("a real call (gRPC lane)", () => {
  const request = (model: string) =>
    envelope(
      toBinary(
        CompleteRequestSchema,
        create(CompleteRequestSchema, {
          model,
          messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
        }),
      ),
    );

  it("a stream whose reader never opens its window is reset and its call cancelled upstream; a model thinking longer than the limit is not", async () => {
    const sluice = await startSluice(
      {
        providers: {
          words: { type: "demo", wordDelayMs: 100 },
          thinker: { type: "demo", responseDelayMs: 3 * writeStallTimeoutMs },
        },
        models: {
          words: { deployments: [{ provider: "words", model: "w" }] },
          thinker: { deployments: [{ provider: "thinker", model: "t" }] },
        },
      },
      { server: { writeStallTimeoutMs } },
    );
    opened.push(sluice);
    const words = sluice.sluice.providers.get("words") as DemoProvider;
    const aborted = once(words.events, "aborted");

    const stalled = await connect(sluice.port, { initialWindowSize: 0 });
    const stalledCall = h2Request(stalled, grpcHeaders("sluice.v1.ChatService/StreamComplete"), request("words"));
    const reader = await connect(sluice.port);
    const thinking = h2Request(reader, grpcHeaders("sluice.v1.ChatService/Complete"), request("thinker"));

    expect((await stalledCall.answer).rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // The call's signal fired: the provider saw its request aborted, mid-answer.
    await aborted;
    const answer = await thinking.answer;
    expect(answer.trailers["grpc-status"]).toBe("0");
    await waitUntil(() => sluice.server.inFlight === 0, "no call left in flight");
  });
});
