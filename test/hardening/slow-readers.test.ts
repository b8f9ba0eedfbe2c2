import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { envelope, ordinaryCall } from "../helpers/raw-http.js";
import {
  allStreamsEnded,
  dataFrame,
  frameType,
  headersFrame,
  openRawH2,
  rstCodeOf,
  settingId,
} from "../helpers/raw-h2-frames.js";
import { expectMemoryReturned, settledMemory } from "../helpers/settled-memory.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

/*
 * Issue 18, finding 4: a stream whose reader never opens its flow-control window costs
 * ~60 KB and lived forever: 40k of them took RSS to 2.5 GB and stalled other callers for
 * seconds. Required: slow readers bounded in time (a stream making no progress in either
 * direction is ended) and in memory; others keep being served.
 *
 * The attacker here grants a window of 0 bytes (SETTINGS_INITIAL_WINDOW_SIZE 0) and never
 * a WINDOW_UPDATE: not one byte of any answer can leave the server.
 */

/** server.writeStallTimeoutMs short (README "Limits"), so the test takes seconds. */
const writeStallTimeoutMs = 1_000;

let sluice: StartedSluice;

beforeAll(async () => {
  sluice = await startSluice(undefined, { server: { writeStallTimeoutMs } });
});
afterAll(async () => {
  await sluice?.close();
});

const request = envelope(
  toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model: "demo",
      messages: [
        { role: Role.USER, content: [{ part: { case: "text", value: "stream a long answer to a reader that never reads" } }] },
      ],
    }),
  ),
);

describe("readers that never open their flow-control window (finding 4)", () => {
  it.each(["StreamComplete", "Complete"])(
    "%s: 2,000 streams over 20 connections are ended by the server; others are served meanwhile; memory comes back",
    async (method) => {
      const before = await settledMemory();
      const connections = await Promise.all(
        Array.from({ length: 20 }, () => openRawH2(sluice.port, [[settingId.initialWindowSize, 0]])),
      );
      const ids = Array.from({ length: 100 }, (_, i) => 2 * i + 1);
      for (const connection of connections) {
        connection.write(
          ...ids.flatMap((id) => [
            headersFrame(id, `/sluice.v1.ChatService/${method}`, { "content-type": "application/grpc", te: "trailers" }),
            dataFrame(id, request, true),
          ]),
        );
      }
      const [ordinary] = await Promise.all([ordinaryCall(sluice.port), ...connections.map((c) => allStreamsEnded(c, ids))]);
      expect(ordinary.provider).toBe("demo");
      for (const connection of connections) {
        // Not one byte of an answer went out (the window stayed shut), and each stream was
        // reset for it (README "Limits": ENHANCE_YOUR_CALM, which clients report as RESOURCE_EXHAUSTED).
        expect(connection.frames.some((f) => f.type === frameType.data && f.payload.length > 0)).toBe(false);
        const resets = connection.frames.filter((f) => f.type === frameType.rstStream);
        expect(resets).toHaveLength(ids.length);
        expect(resets.every((f) => rstCodeOf(f) === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)).toBe(true);
      }

      for (const connection of connections) connection.destroy();
      await Promise.all(connections.map((connection) => connection.closed));
      await waitUntil(() => sluice.server.inFlight === 0, "no call left in flight");
      // 2,000 slow readers at the issue's ~60 KB each held ~120 MB for as long as they lived;
      // all of it must be released (bounds: memoryBoundsMiB, test/helpers/settled-memory.ts).
      await expectMemoryReturned(before);
    },
    30_000,
  );
});
