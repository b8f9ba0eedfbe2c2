import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { grpcStatusOf, unaryJsonError } from "../helpers/error-answers.js";
import { createGrpcJsClient } from "../helpers/protocol-clients.js";
import { connectH2, curlRequest, grpcHeaders, h2Request, http1Request, ordinaryCall } from "../helpers/raw-http.js";
import { frameType, headersFrame, allStreamsEnded, openRawH2, rstCodeOf, settingId } from "../helpers/raw-h2-frames.js";
import { expectMemoryReturned, settledMemory } from "../helpers/settled-memory.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

/*
 * Issue 18, finding 2: HTTP/2 streams opened with headers and no body were never timed
 * out, and the server advertised no SETTINGS_MAX_CONCURRENT_STREAMS: ~8.5 KB each, 500k
 * over 25 connections aborted node (an nghttp2 memory assertion) at ~2 GB RSS. Required:
 * a stream limit per connection, advertised; a timeout for a stream's request body; the
 * server keeps serving others; memory comes back.
 */

/** server.requestBodyTimeoutMs short (README "Limits"), so a test takes seconds. */
const requestBodyTimeoutMs = 1_000;
/** What the server may advertise at most per connection: explicitly set, not node's 2^32-1. */
const maxAdvertisedStreams = 1_000;

let sluice: StartedSluice;

beforeAll(async () => {
  sluice = await startSluice(undefined, { server: { requestBodyTimeoutMs } });
});
afterAll(async () => {
  await sluice?.close();
});

const completePath = "/sluice.v1.ChatService/Complete";
const grpcRequestHeaders = { "content-type": "application/grpc", te: "trailers" };

/** Another caller's calls, over HTTP/1.1 and over a fresh HTTP/2 connection (grpc-js), complete. */
async function expectOthersServed(): Promise<void> {
  const grpcJs = createGrpcJsClient(sluice.url);
  try {
    const [ordinary, grpcAnswer] = await Promise.all([
      ordinaryCall(sluice.port),
      grpcJs.unary(ChatService.method.complete, {
        model: "demo",
        messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
      }),
    ]);
    expect(ordinary.provider).toBe("demo");
    expect(grpcAnswer.provider).toBe("demo");
  } finally {
    grpcJs.close();
  }
}

describe("streams with headers and no body (finding 2)", () => {
  it("the server advertises SETTINGS_MAX_CONCURRENT_STREAMS (and a header list limit)", async () => {
    const connection = await openRawH2(sluice.port);
    try {
      const streams = connection.serverSettings.get(settingId.maxConcurrentStreams);
      expect(streams).toBeDefined();
      expect(streams!).toBeLessThanOrEqual(maxAdvertisedStreams);
      const headerList = connection.serverSettings.get(settingId.maxHeaderListSize);
      expect(headerList).toBeDefined();
      expect(headerList!).toBeLessThanOrEqual(1024 * 1024);
    } finally {
      connection.destroy();
    }
  });

  it("2,000 streams at the advertised limit over 20 connections, no body: each reset once its body is late; others served; memory back", async () => {
    const before = await settledMemory();
    const connections = await Promise.all(Array.from({ length: 20 }, () => openRawH2(sluice.port)));
    const limit = connections[0]!.serverSettings.get(settingId.maxConcurrentStreams)!;
    expect(limit).toBeLessThanOrEqual(maxAdvertisedStreams);
    const ids = Array.from({ length: Math.min(limit, 100) }, (_, i) => 2 * i + 1);
    const started = performance.now();
    for (const connection of connections) {
      connection.write(...ids.map((id) => headersFrame(id, completePath, grpcRequestHeaders)));
    }
    // Meanwhile other callers are served, over HTTP/1.1 and over a fresh HTTP/2 connection.
    await expectOthersServed();

    await Promise.all(connections.map((connection) => allStreamsEnded(connection, ids)));
    // The body timeout ended them, not before it (a timeout never fires early).
    expect(performance.now() - started).toBeGreaterThanOrEqual(requestBodyTimeoutMs - 20);
    for (const connection of connections) {
      const resets = connection.frames.filter((f) => f.type === frameType.rstStream);
      expect(resets.map(rstCodeOf).every((code) => code === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)).toBe(true);
      expect(resets).toHaveLength(ids.length);
    }
    for (const connection of connections) connection.destroy();
    await Promise.all(connections.map((connection) => connection.closed));
    await waitUntil(() => sluice.server.inFlight === 0, "no call left in flight");

    // What the streams held is released (bounds: memoryBoundsMiB, test/helpers/settled-memory.ts).
    await expectMemoryReturned(before);
  }, 20_000);

  it("a client that ignores the limit (2,000 streams on one connection): the connection is closed, every stream ended; others served", async () => {
    const connection = await openRawH2(sluice.port);
    const ids = Array.from({ length: 2_000 }, (_, i) => 2 * i + 1);
    connection.write(...ids.map((id) => headersFrame(id, completePath, grpcRequestHeaders)));
    await expectOthersServed();
    await allStreamsEnded(connection, ids);
    connection.destroy();
    await waitUntil(() => sluice.server.inFlight === 0, "no call left in flight");
  }, 20_000);

  it("a stock HTTP/2 client (node), 2,000 streams over 4 connections, no body: each ends with an error status or a reset", async () => {
    const sessions = await Promise.all(Array.from({ length: 4 }, () => connectH2(sluice.url)));
    try {
      for (const session of sessions) {
        expect(session.remoteSettings.maxConcurrentStreams).toBeLessThanOrEqual(maxAdvertisedStreams);
      }
      const calls = sessions.flatMap((session) =>
        Array.from({ length: 500 }, () => h2Request(session, grpcHeaders("sluice.v1.ChatService/Complete"), "open").answer),
      );
      const [answers, ordinary] = await Promise.all([Promise.all(calls), ordinaryCall(sluice.port)]);
      expect(ordinary.provider).toBe("demo");
      for (const answer of answers) {
        // A gRPC error status, or the stream reset: never left open, never OK.
        const status = grpcStatusOf(answer);
        if (status !== undefined) expect(status.code).not.toBe(0);
        else expect(answer.rstCode).not.toBe(http2.constants.NGHTTP2_NO_ERROR);
      }
    } finally {
      for (const session of sessions) session.destroy();
    }
  }, 30_000);
});

describe("a cap on calls in progress per process (finding 2: shedding instead of growing)", () => {
  /** server.maxConcurrentCalls low enough for a test to reach. */
  const maxConcurrentCalls = 150;
  let capped: StartedSluice;

  beforeAll(async () => {
    // No queue (server.queue.size 0): past the cap, refused at once.
    capped = await startSluice(undefined, {
      server: { requestBodyTimeoutMs, maxConcurrentCalls, queue: { size: 0, maxWaitMs: 250 } },
    });
  });
  afterAll(async () => {
    await capped?.close();
  });

  it("300 idle streams against a cap of 150: the rest refused at once with RESOURCE_EXHAUSTED; served again once they are reset", async () => {
    const sessions = await Promise.all(Array.from({ length: 3 }, () => connectH2(capped.url)));
    try {
      const calls = sessions.flatMap((session) =>
        Array.from({ length: 100 }, () => h2Request(session, grpcHeaders("sluice.v1.ChatService/Complete"), "open").answer),
      );
      // /healthz still answers while the cap is reached.
      const [answers, health] = await Promise.all([
        Promise.all(calls),
        http1Request(capped.port, { method: "GET", path: "/healthz" }),
      ]);
      expect(health.status).toBe(200);
      const shed = answers.filter((answer) => grpcStatusOf(answer)?.code === Code.ResourceExhausted);
      const reset = answers.filter((answer) => answer.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(shed.length).toBeGreaterThanOrEqual(300 - maxConcurrentCalls);
      expect(shed.length + reset.length).toBe(300);
      // The cap holds nothing once the idle streams are gone: ordinary calls are served again.
      await waitUntil(() => capped.server.inFlight === 0, "no call left in flight");
      expect((await ordinaryCall(capped.port)).provider).toBe("demo");
    } finally {
      for (const session of sessions) session.destroy();
    }
  }, 20_000);

  it("at the cap, a Connect unary call is answered 429 RESOURCE_EXHAUSTED at once, not queued", async () => {
    const sessions = await Promise.all(Array.from({ length: 2 }, () => connectH2(capped.url)));
    try {
      const holders = sessions.flatMap((session) =>
        Array.from({ length: maxConcurrentCalls / 2 }, () =>
          h2Request(session, grpcHeaders("sluice.v1.ChatService/Complete"), "open"),
        ),
      );
      await waitUntil(() => capped.server.inFlight >= maxConcurrentCalls, "the cap reached");
      const answer = await http1Request(capped.port, curlRequest);
      expect(answer.status).toBe(429);
      expect(unaryJsonError(answer).code).toBe("resource_exhausted");
      await Promise.all(holders.map(({ answer }) => answer));
    } finally {
      for (const session of sessions) session.destroy();
    }
  }, 20_000);
});
