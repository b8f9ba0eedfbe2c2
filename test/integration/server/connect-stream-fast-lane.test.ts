import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { request } from "undici";
import { startLaneComparison, type LaneComparison } from "../../helpers/lane-comparison.js";
import { CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { createConnectStreamFastLane } from "../../../src/server/connect-stream-fast-lane.js";

/**
 * The Connect streaming fast lane must put the same status, headers and bytes on the wire
 * as connect-node for every call it takes. One server serves both: `x-lane: general`
 * forces connect-node, anything else tries the lane.
 */
let rig: LaneComparison;
let origin: string;
let laneServed: string[];
const path = "/sluice.v1.ChatService/StreamComplete";

beforeAll(async () => {
  rig = await startLaneComparison(({ routes, active, jsonOptions, maxRequestBytes }) =>
    createConnectStreamFastLane({ routes, active, maxRequestBytes, jsonOptions }),
  );
  ({ origin, laneServed } = rig);
});

afterAll(() => rig.close());

function frame(payload: Uint8Array | string, flags = 0): Buffer {
  const bytes = typeof payload === "string" ? Buffer.from(payload) : payload;
  const out = Buffer.alloc(5 + bytes.byteLength);
  out[0] = flags;
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, 5);
  return out;
}

const json = (model: string, text = "Hello") => JSON.stringify({ model, messages: [{ role: "ROLE_USER", content: [{ text }] }] });
const binary = (model: string) =>
  toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model,
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hello" } }] }],
    }),
  );

async function call(body: Buffer, lane: "fast" | "general", headers: Record<string, string>) {
  const res = await request(origin + path, { method: "POST", body, headers: { ...headers, "x-lane": lane } });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  const { date: _date, "x-lane": _lane, ...rest } = res.headers;
  return {
    status: res.statusCode,
    headers: rest,
    // Ids are random per call; everything else must match.
    body: bytes.toString("latin1").replace(/demo-[0-9a-f-]{36}/g, "demo-ID"),
  };
}

async function both(body: Buffer, headers: Record<string, string>) {
  const before = laneServed.length;
  const fast = await call(body, "fast", headers);
  const servedByLane = laneServed.length > before;
  const general = await call(body, "general", headers);
  return { fast, general, servedByLane };
}

const connectJson = { "content-type": "application/connect+json" };
const connectProto = { "content-type": "application/connect+proto" };

describe("Connect streaming fast lane", () => {
  it.each([
    ["a streamed completion (JSON)", frame(json("demo")), connectJson],
    ["a streamed completion (binary)", frame(binary("demo")), connectProto],
    [
      "a streamed completion with charset and protocol version",
      frame(json("demo")),
      { "content-type": "application/connect+json; charset=utf-8", "connect-protocol-version": "1" },
    ],
    ["an unknown model (NOT_FOUND + details in the end-stream)", frame(json("nope")), connectJson],
    ["an invalid request (INVALID_ARGUMENT + BadRequest)", frame(json("")), connectJson],
    ["an unknown JSON field", frame('{"model":"demo","temprature":1}'), connectJson],
    ["text that is not JSON", frame("{not json"), connectJson],
    ["bytes that are not the message", frame(Uint8Array.of(0xff, 0xff, 0xff)), connectProto],
    ["a missing message", Buffer.alloc(0), connectJson],
    ["two messages", Buffer.concat([frame(json("demo")), frame(json("demo"))]), connectJson],
    ["a truncated envelope", frame(json("demo")).subarray(0, 12), connectJson],
    ["a compressed envelope without an encoding", frame(json("demo"), 1), connectJson],
    ["an end-stream envelope instead of a message", frame("{}", 2), connectJson],
    ["a message over the size limit", frame(json("demo", "x".repeat(2000))), connectJson],
    ["an already expired deadline", frame(json("demo")), { ...connectJson, "connect-timeout-ms": "0" }],
  ])("answers %s exactly as connect-node does", async (_name, body, headers) => {
    const { fast, general, servedByLane } = await both(body, headers);
    expect(servedByLane).toBe(true);
    expect(fast).toEqual(general);
  });

  it("ends a good stream with deltas, done and the route trailers in the end-stream metadata", async () => {
    const { fast } = await both(frame(json("demo")), connectJson);
    expect(fast.status).toBe(200);
    expect(fast.headers["content-type"]).toBe("application/connect+json");
    expect(fast.body).toContain('"done"');
    expect(fast.body).toContain('"sluice-provider":["demo"]');
  });

  it("leaves compression, other protocol versions and malformed timeouts to connect-node", async () => {
    const before = laneServed.length;
    const gzip = await call(frame(json("demo")), "fast", { ...connectJson, "connect-content-encoding": "gzip" });
    const version = await call(frame(json("demo")), "fast", { ...connectJson, "connect-protocol-version": "2" });
    const badTimeout = await call(frame(json("demo")), "fast", { ...connectJson, "connect-timeout-ms": "soon" });
    const unary = await call(frame(json("demo")), "fast", { "content-type": "application/json" });
    expect(laneServed.length).toBe(before);
    // What connect-node answers to each. A gzip stream whose message is not compressed, and a
    // protocol version the lane does not claim, are served in full (gzip announced back).
    const plain = await call(frame(json("demo")), "general", connectJson);
    expect(plain.status).toBe(200);
    expect(plain.body).toContain('"done"');
    expect(gzip).toEqual({ ...plain, headers: { ...plain.headers, "connect-content-encoding": "gzip" } });
    expect(version).toEqual(plain);
    // A malformed timeout: HTTP 200 and an end-stream frame with invalid_argument.
    const invalidTimeout =
      '{"error":{"code":"invalid_argument","message":"protocol error: invalid connect timeout value: soon"}}';
    expect(badTimeout).toEqual({ ...plain, body: frame(invalidTimeout, 2).toString("latin1") });
    // The unary content type on a streaming method: 415 Unsupported Media Type, no body.
    expect(unary.status).toBe(415);
    expect(unary.headers["content-type"]).toBeUndefined();
    expect(unary.body).toBe("");
  });
});
