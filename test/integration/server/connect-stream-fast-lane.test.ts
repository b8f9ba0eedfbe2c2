import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { request } from "undici";
import { startLaneComparison, type LaneComparison } from "../../helpers/lane-comparison.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";
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
  rig = await startLaneComparison(({ routes, active, jsonOptions, maxRequestBytes, requestBytes }) =>
    createConnectStreamFastLane({ routes, active, maxRequestBytes, requestBytes, jsonOptions }),
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
  const res = await request(origin + path, {
    method: "POST",
    body,
    headers: { "x-request-id": "lane-comparison", ...headers, "x-lane": lane },
  });
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
const gzipJson = { ...connectJson, "connect-content-encoding": "gzip" };
const brJson = { ...connectJson, "connect-content-encoding": "br" };
/** A valid request padded with 100 KB of JSON whitespace: ~150 bytes gzip'd, 100× the 1 KiB limit decompressed. */
const gzipBomb = frame(gzipSync(json("demo") + " ".repeat(100_000)), 1);

/**
 * An answer without its `connect-content-encoding` header: connect-node names the request's
 * compression back (it may compress messages of 1 KiB or more), the lane answers identity,
 * which the protocol allows. The answers here are small: their bytes are the same.
 */
function uncompressed<T extends { headers: Record<string, unknown> }>(answer: T): T {
  const { "connect-content-encoding": _encoding, ...headers } = answer.headers;
  return { ...answer, headers };
}

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

  it.each([
    ["a gzip'd completion (JSON)", frame(gzipSync(json("demo")), 1), gzipJson],
    ["a br completion (JSON)", frame(brotliCompressSync(json("demo")), 1), brJson],
    ["a gzip'd completion (binary)", frame(gzipSync(binary("demo")), 1), { ...connectProto, "connect-content-encoding": "gzip" }],
    ["gzip announced, the envelope not compressed", frame(json("demo")), gzipJson],
    [
      "gzip, the client accepting only identity",
      frame(gzipSync(json("demo")), 1),
      { ...gzipJson, "connect-accept-encoding": "identity" },
    ],
    ["a gzip envelope that does not decompress", frame(Buffer.from("not compressed at all"), 1), gzipJson],
    ["a br envelope that does not decompress", frame(Buffer.from("not compressed at all"), 1), brJson],
    ["a gzip bomb", gzipBomb, gzipJson],
  ])("decompresses %s as connect-node does; the answer uncompressed", async (_name, body, headers) => {
    const { fast, general, servedByLane } = await both(body, headers);
    expect(servedByLane).toBe(true);
    expect(fast.headers["connect-content-encoding"]).toBeUndefined();
    expect(fast).toEqual(uncompressed(general));
  });

  it("answers a gzip bomb with RESOURCE_EXHAUSTED, a corrupt envelope with INVALID_ARGUMENT", async () => {
    const bomb = await call(gzipBomb, "fast", gzipJson);
    expect(bomb.body).toContain(
      '{"error":{"code":"resource_exhausted","message":"message is larger than configured readMaxBytes 1024 after decompression"}}',
    );
    const corrupt = await call(frame(Buffer.from("not brotli"), 1), "fast", brJson);
    expect(corrupt.body).toContain('{"error":{"code":"invalid_argument","message":"decompression failed"}}');
  });

  it("ends a good stream with deltas, done and the route trailers in the end-stream metadata", async () => {
    const { fast } = await both(frame(json("demo")), connectJson);
    expect(fast.status).toBe(200);
    expect(fast.headers["content-type"]).toBe("application/connect+json");
    expect(fast.body).toContain('"done"');
    expect(fast.body).toContain('"sluice-provider":["demo"]');
  });

  it("answers bytes that are not the message with INVALID_ARGUMENT, where connect-node says INTERNAL", async () => {
    const { fast, general, servedByLane } = await both(frame(Uint8Array.of(0xff, 0xff, 0xff)), connectProto);
    expect(servedByLane).toBe(true);
    expect(fast.body).toMatch(/"code":"invalid_argument","message":"parse binary: /);
    // connect-node's own binary parse (connect's createBinarySerialization) says INTERNAL, in the same words.
    const internal = general.body.replace('"code":"internal"', '"code":"invalid_argument"');
    expect(fast.body.slice(5)).toBe(internal.slice(5));
  });

  it("leaves unknown encodings, other protocol versions and malformed timeouts to connect-node", async () => {
    const before = laneServed.length;
    const deflate = await call(frame(json("demo")), "fast", { ...connectJson, "connect-content-encoding": "deflate" });
    const version = await call(frame(json("demo")), "fast", { ...connectJson, "connect-protocol-version": "2" });
    const badTimeout = await call(frame(json("demo")), "fast", { ...connectJson, "connect-timeout-ms": "soon" });
    const unary = await call(frame(json("demo")), "fast", { "content-type": "application/json" });
    expect(laneServed.length).toBe(before);
    // What connect-node answers to each. (Another protocol version: see "bad input" below.)
    const plain = await call(frame(json("demo")), "general", connectJson);
    expect(plain.status).toBe(200);
    expect(plain.body).toContain('"done"');
    expect(deflate.status).toBe(200);
    expect(deflate.body).toContain('"code":"unimplemented","message":"unknown compression \\"deflate\\"');
    expect(version.status).toBe(200);
    // A malformed timeout: HTTP 200 and an end-stream frame with invalid_argument.
    const invalidTimeout =
      '{"error":{"code":"invalid_argument","message":"protocol error: invalid connect timeout value: soon"}}';
    // Refused before any interceptor ran: no request id.
    const { "x-request-id": _requestId, ...unreadHeaders } = plain.headers;
    expect(badTimeout).toEqual({ ...plain, headers: unreadHeaders, body: frame(invalidTimeout, 2).toString("latin1") });
    // The unary content type on a streaming method: 415 Unsupported Media Type, no body.
    expect(unary.status).toBe(415);
    expect(unary.headers["content-type"]).toBeUndefined();
    expect(unary.body).toBe("");
  });
});

/*
 * Bad input on a whole server, lanes on and off (the reference: everything through
 * connect-node as the server configures it): the same answer, INVALID_ARGUMENT.
 */
describe("Connect streaming: bad input, on the lanes and on connect-node alike", () => {
  const servers: StartedSluice[] = [];
  const document = {
    providers: { demo: { type: "demo", wordDelayMs: 0, responseDelayMs: 0 } },
    models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    server: { maxRequestBytes: 1024 },
  };

  beforeAll(async () => {
    servers.push(await startSluice(document, { fastLanes: true }), await startSluice(document, { fastLanes: false }));
  });
  afterAll(() => Promise.all(servers.map((server) => server.close())));

  async function answers(body: Buffer, headers: Record<string, string>) {
    const [lanes, reference] = await Promise.all(
      servers.map(async (server) => {
        const res = await request(server.url + path, {
          method: "POST",
          body,
          headers: { "x-request-id": "lane-comparison", ...headers },
        });
        const { date: _date, ...rest } = res.headers;
        const text = Buffer.from(await res.body.arrayBuffer()).toString("latin1");
        return uncompressed({ status: res.statusCode, headers: rest, body: text.replace(/demo-[0-9a-f-]{36}/g, "demo-ID") });
      }),
    );
    expect(lanes).toEqual(reference);
    return lanes!;
  }

  /** The end-of-stream envelope's error, as the caller reads it. */
  const endError = (body: string) => (JSON.parse(body.slice(body.lastIndexOf('{"error"'))) as { error: unknown }).error;

  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"'),
    Buffer.of(0xc3, 0x28, 0xff),
    Buffer.from('"}]}]}'),
  ]);
  const garbage = frame(Buffer.from("not compressed at all"), 1);

  it.each([
    [
      "connect-protocol-version: 2",
      frame(json("demo")),
      { ...connectJson, "connect-protocol-version": "2" },
      { code: "invalid_argument", message: 'Connect-Protocol-Version must be "1": got "2"' },
    ],
    [
      "JSON that is not UTF-8",
      frame(invalidUtf8),
      connectJson,
      { code: "invalid_argument", message: "request body is not valid UTF-8" },
    ],
    [
      "a gzip envelope that does not decompress",
      garbage,
      { ...connectJson, "connect-content-encoding": "gzip" },
      { code: "invalid_argument", message: "decompression failed" },
    ],
    [
      "a br envelope that does not decompress",
      garbage,
      { ...connectJson, "connect-content-encoding": "br" },
      { code: "invalid_argument", message: "decompression failed" },
    ],
    [
      "a br envelope that decompresses past readMaxBytes",
      frame(brotliCompressSync(json("demo", "x".repeat(4096))), 1),
      { ...connectJson, "connect-content-encoding": "br" },
      { code: "resource_exhausted", message: "message is larger than configured readMaxBytes 1024 after decompression" },
    ],
  ])("%s", async (_name, body, headers, error) => {
    const answer = await answers(body, headers);
    expect(answer.status).toBe(200);
    expect(endError(answer.body)).toEqual(error);
  });

  it("a gzip'd stream with a deadline past what a timer holds runs to its end (connect-node clamps it)", async () => {
    const answer = await answers(frame(gzipSync(json("demo")), 1), {
      ...connectJson,
      "connect-content-encoding": "gzip",
      "connect-timeout-ms": "2147483648",
    });
    expect(answer.body).toContain('"done"');
    expect(answer.body).not.toContain('"error"');
  });
});
