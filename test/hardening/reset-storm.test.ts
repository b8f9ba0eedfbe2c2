import { once } from "node:events";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { accessLogInterceptor } from "../../src/interceptors/access-log.js";
import type { DemoProvider } from "../../src/providers/demo/demo-provider.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import { connectH2, envelope, grpcHeaders, h2Request, ordinaryCall } from "../helpers/raw-http.js";
import { dataFrame, headersFrame, openRawH2, rstStreamFrame } from "../helpers/raw-h2-frames.js";
import { expectMemoryReturned, settledMemory } from "../helpers/settled-memory.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { eventCount, waitUntil } from "../helpers/wait-until.js";

/*
 * Issue 18, finding 8 (first point): every stream a caller reset got its own access-log
 * line — 44k lines in 10 s of rapid reset. Required: reset storms are aggregated (one
 * summary line per interval, src/interceptors/access-log.ts), ordinary calls keep a line
 * each, and the server keeps serving.
 */

let sluice: StartedSluice;
let log: CapturedLogger;
let slow: DemoProvider;
/** The server's side of each connection, by the client's port. */
const serverSockets = new Map<number, Socket>();

beforeAll(async () => {
  log = createCapturedLogger("info");
  // The embedded default, and a model `slow` that thinks a minute before it answers (as a
  // real model may): a call to it is still in flight when its caller resets it.
  sluice = await startSluice(
    {
      providers: { demo: { type: "demo" }, slow: { type: "demo", responseDelayMs: 60_000 } },
      models: {
        demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
        slow: { deployments: [{ provider: "slow", model: "thinking" }] },
      },
    },
    {
      logger: log.logger,
      onConnection: (socket) => serverSockets.set(socket.remotePort!, socket),
      // The chain's access log (outermost, src/interceptors/index.ts) summarising every
      // second instead of every 10 s, so the test sees its summaries.
      interceptors: (chain) => [
        accessLogInterceptor(log.logger, { cancelledSummaryIntervalMs: summaryIntervalMs }),
        ...chain.slice(1),
      ],
    },
  );
  slow = sluice.sluice.providers.get("slow") as DemoProvider;
});
afterAll(async () => {
  await sluice?.close();
});

const requestBytes = envelope(
  toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model: "slow",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "reset me" } }] }],
    }),
  ),
);

const summaryIntervalMs = 1_000;

/** Access lines of calls that did not succeed: each one a line the storm cost. */
function failedCallLines(): Record<string, unknown>[] {
  return log.withMessage("rpc").filter((line) => line["code"] !== "ok");
}

/** Calls counted in the summary lines so far. */
function summarisedCalls(): number {
  return log.withMessage("rpcs cancelled by their callers").reduce((sum, line) => sum + (line["count"] as number), 0);
}

describe("reset storm and the access log (finding 8)", () => {
  it("200 calls in flight, all reset by their callers at once: one line, then a summary counting the rest", async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, () => connectH2(sluice.url)));
    try {
      const perSession = 25;
      const total = sessions.length * perSession;
      const started = eventCount(slow.events, "started", total);
      const aborted = eventCount(slow.events, "aborted", total);
      const streams = sessions.flatMap((session) =>
        Array.from({ length: perSession }, () => h2Request(session, grpcHeaders("sluice.v1.ChatService/Complete"), requestBytes)),
      );
      // Every call reached the model, then every caller gives up at once.
      await started;
      for (const { stream } of streams) stream.close(http2.constants.NGHTTP2_CANCEL);
      await aborted;
      await Promise.all(streams.map(({ answer }) => answer));
      await waitUntil(() => sluice.server.inFlight === 0, "every reset call ended on the server");

      // The first has its line; the other 199 are one summary line when the interval ends.
      await waitUntil(() => summarisedCalls() > 0, "the summary line", 3 * summaryIntervalMs);
      expect(failedCallLines()).toHaveLength(1);
      expect(failedCallLines().length + summarisedCalls()).toBe(total);
    } finally {
      for (const session of sessions) session.destroy();
    }
  });

  it("rapid reset (HEADERS, DATA, RST_STREAM, 2,000 times on one connection): the log stays quiet, others are served, the connection is closed", async () => {
    const before = await settledMemory();
    const linesBefore = log.lines.length;
    // An attacker that never closes its side: the server must close the connection itself.
    const attacker = await openRawH2(sluice.port, [], { allowHalfOpen: true });
    const serverSide = serverSockets.get(attacker.socket.localPort!)!;
    const serverClosed = serverSide.closed ? Promise.resolve() : once(serverSide, "close").then(() => {});
    const storm: Buffer[] = [];
    for (let i = 0; i < 2_000; i++) {
      const id = 2 * i + 1;
      storm.push(
        headersFrame(id, "/sluice.v1.ChatService/Complete", { "content-type": "application/grpc", te: "trailers" }),
        dataFrame(id, requestBytes, true),
        rstStreamFrame(id, http2.constants.NGHTTP2_CANCEL),
      );
    }
    const [ordinary] = await Promise.all([
      ordinaryCall(sluice.port),
      (async () => {
        for (let at = 0; at < storm.length; at += 300) attacker.write(...storm.slice(at, at + 300));
      })(),
    ]);
    expect(ordinary.provider).toBe("demo");
    // Past the reset allowance (src/server/connection-sweep.ts) the server closes the connection.
    await serverClosed;
    attacker.destroy();
    await waitUntil(() => sluice.server.inFlight === 0, "every reset call ended on the server");

    // The ordinary call's own line, a reset call's line, a summary line a second: not one per reset.
    const lines = log.lines.slice(linesBefore);
    expect(lines.filter((line) => line["msg"] === "rpc" && line["code"] === "ok")).toHaveLength(1);
    expect(lines.filter((line) => line["msg"] === "rpc" && line["code"] !== "ok").length).toBeLessThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(10);
    // Still serving afterwards, and what the storm held is released (bounds: memoryBoundsMiB).
    expect((await ordinaryCall(sluice.port)).provider).toBe("demo");
    await expectMemoryReturned(before);
  }, 20_000);
});
