import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { create, toBinary } from "@bufbuild/protobuf";
import { CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { startLaneComparison, type LaneComparison } from "../../helpers/lane-comparison.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";
import { createConnectUnaryFastLane } from "../../../src/server/connect-unary-fast-lane.js";

/**
 * The fast lane must answer exactly as connect-node does for every request it takes. One
 * server serves both: `x-lane: general` forces connect-node, anything else tries the lane.
 */
let rig: LaneComparison;
let origin: string;
let laneServed: string[];

beforeAll(async () => {
  rig = await startLaneComparison(({ routes, active, jsonOptions, maxRequestBytes, requestBytes }) =>
    createConnectUnaryFastLane({ routes, active, maxRequestBytes, requestBytes, jsonOptions }),
  );
  ({ origin, laneServed } = rig);
});

afterAll(() => rig.close());

async function both(path: string, body: string | Uint8Array, headers: Record<string, string>) {
  const answer = async (lane: "fast" | "general") => {
    const res = await request(origin + path, {
      method: "POST",
      body,
      // One request id both ways: every answer echoes it (in headers, or an error's ErrorInfo).
      headers: { "x-request-id": "lane-comparison", ...headers, "x-lane": lane },
    });
    const text = Buffer.from(await res.body.arrayBuffer()).toString("latin1");
    return {
      status: res.statusCode,
      contentType: res.headers["content-type"],
      // Ids are random per call; everything else must match.
      body: text.replace(/demo-[0-9a-f-]{36}/g, "demo-ID"),
    };
  };
  const before = laneServed.length;
  const fast = await answer("fast");
  const servedByLane = laneServed.length > before;
  const general = await answer("general");
  return { fast, general, servedByLane };
}

const json = { "content-type": "application/json" };
const proto = { "content-type": "application/proto" };
const binaryRequest = (model: string): Uint8Array =>
  toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model,
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hello" } }] }],
    }),
  );
const binaryHello = binaryRequest("demo");
const hello = JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "Hello" }] }] });
const gzipJson = { ...json, "content-encoding": "gzip" };
/** A valid request padded with 100 KB of JSON whitespace: ~150 bytes gzip'd, 100× the 1 KiB limit decompressed. */
const gzipBomb = gzipSync(hello + " ".repeat(100_000));

describe("Connect unary JSON fast lane", () => {
  it.each([
    ["a completion", "/sluice.v1.ChatService/Complete", hello, json],
    [
      "a completion with charset and protocol version",
      "/sluice.v1.ChatService/Complete",
      hello,
      {
        "content-type": "application/json; charset=utf-8",
        "connect-protocol-version": "1",
      },
    ],
    ["ListModels", "/sluice.v1.ModelService/ListModels", "{}", json],
    ["an unknown model (404 + ErrorInfo)", "/sluice.v1.ChatService/Complete", hello.replace('"demo"', '"nope"'), json],
    [
      "an invalid request (400 + BadRequest)",
      "/sluice.v1.ChatService/Complete",
      JSON.stringify({ model: "demo", messages: [] }),
      json,
    ],
    ["malformed JSON", "/sluice.v1.ChatService/Complete", '{"model": "demo", ', json],
    ["an unknown field", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: "demo", temprature: 1 }), json],
    ["a wrong field type", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: 42 }), json],
    ["a body over the size limit", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: "x".repeat(2000) }), json],
    ["a completion (binary)", "/sluice.v1.ChatService/Complete", binaryHello, proto],
    ["ListModels (binary)", "/sluice.v1.ModelService/ListModels", new Uint8Array(0), proto],
    ["an unknown model (binary: the error is JSON)", "/sluice.v1.ChatService/Complete", binaryRequest("nope"), proto],
    ["an invalid request (binary)", "/sluice.v1.ChatService/Complete", binaryRequest(""), proto],
    ["a binary body over the size limit", "/sluice.v1.ChatService/Complete", binaryRequest("x".repeat(2000)), proto],
    // Compressed bodies: decompressed on the lane as connect-node does (the answers are small:
    // connect-node compresses only from 1 KiB, so both answer identity here).
    ["a gzip completion", "/sluice.v1.ChatService/Complete", gzipSync(hello), gzipJson],
    ["a br completion", "/sluice.v1.ChatService/Complete", brotliCompressSync(hello), { ...json, "content-encoding": "br" }],
    [
      "a gzip completion (binary)",
      "/sluice.v1.ChatService/Complete",
      gzipSync(binaryHello),
      { ...proto, "content-encoding": "gzip" },
    ],
    [
      "an empty gzip body (binary ListModels)",
      "/sluice.v1.ModelService/ListModels",
      new Uint8Array(0),
      { ...proto, "content-encoding": "gzip" },
    ],
    ["a gzip body that does not decompress", "/sluice.v1.ChatService/Complete", "not gzip at all", gzipJson],
    [
      "a br body that does not decompress",
      "/sluice.v1.ChatService/Complete",
      "not br at all",
      { ...json, "content-encoding": "br" },
    ],
    ["a gzip bomb (130 bytes, 100 KB decompressed)", "/sluice.v1.ChatService/Complete", gzipBomb, gzipJson],
    [
      "gzip with an explicit identity accept-encoding",
      "/sluice.v1.ChatService/Complete",
      gzipSync(hello),
      { ...gzipJson, "accept-encoding": "identity" },
    ],
  ])("answers %s exactly as connect-node does", async (_name, path, body, headers) => {
    const { fast, general, servedByLane } = await both(path, body, headers);
    expect(servedByLane).toBe(true);
    expect(fast).toEqual(general);
  });

  it("answers an expired connect-timeout-ms with DEADLINE_EXCEEDED as connect-node does", async () => {
    // The demo answers at once; a 0 ms budget has already run out when the call starts.
    const slow = { ...json, "connect-timeout-ms": "0" };
    const { fast, general } = await both("/sluice.v1.ChatService/Complete", hello, slow);
    expect(fast.status).toBe(504);
    expect(fast).toEqual(general);
  });

  it("answers binary bytes that are not the message with INVALID_ARGUMENT, where connect-node says INTERNAL", async () => {
    const { fast, general, servedByLane } = await both("/sluice.v1.ChatService/Complete", Uint8Array.of(0xff, 0xff, 0xff), proto);
    expect(servedByLane).toBe(true);
    expect(fast.status).toBe(400);
    expect(JSON.parse(fast.body)).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^parse binary: /) });
    // connect-node's own binary parse (connect's createBinarySerialization) says INTERNAL, in the same words.
    expect(general.status).toBe(500);
    expect(JSON.parse(fast.body)).toEqual({ ...JSON.parse(general.body), code: "invalid_argument" });
  });

  it("answers a gzip bomb with RESOURCE_EXHAUSTED and a corrupt body with INVALID_ARGUMENT", async () => {
    const bomb = await both("/sluice.v1.ChatService/Complete", gzipBomb, gzipJson);
    expect(bomb.servedByLane).toBe(true);
    expect(bomb.fast.status).toBe(429);
    expect(JSON.parse(bomb.fast.body)).toEqual({
      code: "resource_exhausted",
      message: "message is larger than configured readMaxBytes 1024 after decompression",
    });
    const corrupt = await both("/sluice.v1.ChatService/Complete", "not br at all", { ...json, "content-encoding": "br" });
    expect(corrupt.servedByLane).toBe(true);
    expect(corrupt.fast.status).toBe(400);
    expect(JSON.parse(corrupt.fast.body)).toEqual({ code: "invalid_argument", message: "decompression failed" });
  });

  it("leaves what it does not handle to connect-node", async () => {
    const before = laneServed.length;
    const deflate = await request(`${origin}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      body: "x",
      headers: { ...json, "content-encoding": "deflate" },
    });
    const deflateBody = await deflate.body.text();
    const badTimeout = await request(`${origin}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      body: hello,
      headers: { ...json, "connect-timeout-ms": "soon" },
    });
    await badTimeout.body.text();
    const streaming = await request(`${origin}/sluice.v1.ChatService/StreamComplete`, {
      method: "POST",
      body: hello,
      headers: json,
    });
    await streaming.body.text();
    expect(laneServed.length).toBe(before);
    // connect-node answered each: a decoded error, not a hang or a 404 from nowhere.
    expect(deflate.statusCode).toBe(501);
    expect(JSON.parse(deflateBody)).toMatchObject({
      code: "unimplemented",
      message: expect.stringMatching(/^unknown compression "deflate"/),
    });
    expect(badTimeout.statusCode).toBe(400);
    expect(streaming.statusCode).toBe(415);
  });
});

/*
 * Bad input on a whole server, lanes on and off (the reference: everything through
 * connect-node as the server configures it): the same answer, INVALID_ARGUMENT / HTTP 400.
 */
describe("Connect unary: bad input, on the lanes and on connect-node alike", () => {
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

  async function answers(body: Uint8Array | string, headers: Record<string, string>) {
    const [lanes, reference] = await Promise.all(
      servers.map(async (server) => {
        const res = await request(`${server.url}/sluice.v1.ChatService/Complete`, {
          method: "POST",
          body,
          headers: { "x-request-id": "lane-comparison", ...headers },
        });
        const { date: _date, ...rest } = res.headers;
        return { status: res.statusCode, headers: rest, body: (await res.body.text()).replace(/demo-[0-9a-f-]{36}/g, "demo-ID") };
      }),
    );
    expect(lanes).toEqual(reference);
    return lanes!;
  }

  const binary = binaryHello;
  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"'),
    Buffer.of(0xc3, 0x28, 0xff),
    Buffer.from('"}]}]}'),
  ]);

  it.each([
    [
      "connect-protocol-version: 2 (JSON)",
      hello,
      { ...json, "connect-protocol-version": "2" },
      400,
      { code: "invalid_argument", message: 'Connect-Protocol-Version must be "1": got "2"' },
    ],
    [
      "connect-protocol-version: 2 (binary)",
      binary,
      { "content-type": "application/proto", "connect-protocol-version": "2" },
      400,
      { code: "invalid_argument", message: 'Connect-Protocol-Version must be "1": got "2"' },
    ],
    ["JSON that is not UTF-8", invalidUtf8, json, 400, { code: "invalid_argument", message: "request body is not valid UTF-8" }],
    [
      "a gzip body that does not decompress",
      "not gzip at all",
      { ...json, "content-encoding": "gzip" },
      400,
      { code: "invalid_argument", message: "decompression failed" },
    ],
    [
      "a br body that does not decompress",
      "not brotli at all",
      { ...json, "content-encoding": "br" },
      400,
      { code: "invalid_argument", message: "decompression failed" },
    ],
    [
      "a br body that decompresses past readMaxBytes",
      brotliCompressSync(JSON.stringify({ model: "x".repeat(4096) })),
      { ...json, "content-encoding": "br" },
      429,
      { code: "resource_exhausted", message: "message is larger than configured readMaxBytes 1024 after decompression" },
    ],
  ])("%s", async (_name, body, headers, status, error) => {
    const answer = await answers(body, headers);
    expect(answer.status).toBe(status);
    expect(JSON.parse(answer.body)).toEqual(error);
  });

  it("a protocol version 1 or none is served; JSON and binary alike", async () => {
    expect((await answers(hello, { ...json, "connect-protocol-version": "1" })).status).toBe(200);
    expect((await answers(hello, json)).status).toBe(200);
    expect((await answers(binary, { "content-type": "application/proto" })).status).toBe(200);
  });

  it("a gzip'd call with a deadline past what a timer holds is answered (connect-node clamps it)", async () => {
    const answer = await answers(gzipSync(hello), { ...json, "content-encoding": "gzip", "connect-timeout-ms": "2147483648" });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ provider: "demo" });
  });
});
