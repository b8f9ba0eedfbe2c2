import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ChatService,
  CompleteRequestSchema,
  StreamCompleteResponseSchema,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { grpcStatusOf, streamEndError } from "../helpers/error-answers.js";
import { createGrpcJsClient, type GrpcJsClient } from "../helpers/protocol-clients.js";
import { connectH2, envelope, grpcHeaders, h2Request, http1Request, ordinaryCall, parseEnvelopes } from "../helpers/raw-http.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

/*
 * Issue 18, finding 3: a deadline of 2^31 ms or more (`grpc-timeout: 597H`,
 * `connect-timeout-ms: 2147483648`) went to setTimeout, which clamps it to 1 ms: a valid
 * long call failed at once with DEADLINE_EXCEEDED. Required: a deadline is clamped to a
 * documented maximum, never shortened — the call runs to its end.
 *
 * The calls are streams of the demo model (20 ms between words, the embedded default):
 * they take tens of milliseconds, so a deadline that fired after 1 ms would end them.
 */

let sluice: StartedSluice;
let grpcJs: GrpcJsClient;

beforeAll(async () => {
  sluice = await startSluice();
  grpcJs = createGrpcJsClient(sluice.url);
});
afterAll(async () => {
  grpcJs.close();
  await sluice?.close();
});

const request = create(CompleteRequestSchema, {
  model: "demo",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "a call that takes a while to answer" } }] }],
});
const requestJson = JSON.stringify({
  model: "demo",
  messages: [{ role: "ROLE_USER", content: [{ text: "a call that takes a while to answer" }] }],
});

/** The event kinds of a binary stream answer, in order. */
function binaryEvents(body: Buffer): Array<StreamCompleteResponse["event"]["case"]> {
  return parseEnvelopes(body)
    .filter((frame) => frame.flags === 0)
    .map((frame) => fromBinary(StreamCompleteResponseSchema, frame.data).event.case);
}

/** Deadlines past what a timer holds: 597 hours, 2^31 ms, and the largest each header can say. */
const grpcTimeouts = ["597H", "2147484S", "99999999H"];
const connectTimeouts = ["2147483648", "9999999999"];

describe("deadlines past 2^31 ms (finding 3)", () => {
  it.each(grpcTimeouts)("gRPC (fast lane), grpc-timeout %s: the stream runs to its end", async (timeout) => {
    const session = await connectH2(sluice.url);
    try {
      const [result, ordinary] = await Promise.all([
        h2Request(
          session,
          grpcHeaders("sluice.v1.ChatService/StreamComplete", { "grpc-timeout": timeout }),
          envelope(toBinary(CompleteRequestSchema, request)),
        ).answer,
        ordinaryCall(sluice.port),
      ]);
      expect(ordinary.provider).toBe("demo");
      expect(grpcStatusOf(result)).toMatchObject({ code: 0 });
      const events = binaryEvents(result.body);
      expect(events[0]).toBe("start");
      expect(events.at(-1)).toBe("done");
    } finally {
      session.close();
    }
  });

  it.each(grpcTimeouts)("gRPC unary, grpc-timeout %s: answered", async (timeout) => {
    const session = await connectH2(sluice.url);
    try {
      const { answer } = h2Request(
        session,
        grpcHeaders("sluice.v1.ChatService/Complete", { "grpc-timeout": timeout }),
        envelope(toBinary(CompleteRequestSchema, request)),
      );
      expect(grpcStatusOf(await answer)).toMatchObject({ code: 0 });
    } finally {
      session.close();
    }
  });

  it.each(grpcTimeouts)("gRPC-Web, grpc-timeout %s: the stream runs to its end", async (timeout) => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/StreamComplete",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "grpc-timeout": timeout },
      body: envelope(toBinary(CompleteRequestSchema, request)),
    });
    expect(answer.status).toBe(200);
    const trailer = parseEnvelopes(answer.body).find((frame) => (frame.flags & 0x80) === 0x80);
    expect(trailer?.data.toString()).toMatch(/grpc-status: ?0\r\n/);
    expect(binaryEvents(answer.body).at(-1)).toBe("done");
  });

  it.each(connectTimeouts)("Connect streaming JSON, connect-timeout-ms %s: the stream runs to its end", async (timeout) => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/StreamComplete",
      headers: { "content-type": "application/connect+json", "connect-timeout-ms": timeout },
      body: envelope(Buffer.from(requestJson)),
    });
    expect(answer.status).toBe(200);
    expect(streamEndError(answer.body)).toBeUndefined();
    const events = parseEnvelopes(answer.body)
      .filter((frame) => frame.flags === 0)
      .map((frame) => Object.keys(JSON.parse(frame.data.toString()) as object)[0]);
    expect(events.at(-1)).toBe("done");
  });

  it.each(connectTimeouts)("Connect unary JSON, connect-timeout-ms %s: 200", async (timeout) => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/json", "connect-timeout-ms": timeout },
      body: requestJson,
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString()).provider).toBe("demo");
  });

  it("Connect unary JSON gzip'd (connect-node), connect-timeout-ms 2147483648: 200", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/json", "content-encoding": "gzip", "connect-timeout-ms": "2147483648" },
      body: gzipSync(requestJson),
    });
    expect(answer.status).toBe(200);
  });

  it("a stock gRPC client (grpc-js) with a deadline 597 hours away: the stream runs to its end", async () => {
    const events: Array<string | undefined> = [];
    const stream = grpcJs.serverStream(ChatService.method.streamComplete, request, { deadlineMs: 597 * 3_600_000 });
    for await (const event of stream) events.push((event as StreamCompleteResponse).event.case);
    expect(events[0]).toBe("start");
    expect(events.at(-1)).toBe("done");
  });

  it("an ordinary short deadline still fires: grpc-timeout 1m on a stream → DEADLINE_EXCEEDED", async () => {
    const session = await connectH2(sluice.url);
    try {
      const { answer } = h2Request(
        session,
        grpcHeaders("sluice.v1.ChatService/StreamComplete", { "grpc-timeout": "1m" }),
        envelope(toBinary(CompleteRequestSchema, request)),
      );
      expect(grpcStatusOf(await answer)?.code).toBe(4);
    } finally {
      session.close();
    }
  });
});
