import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http2 from "node:http2";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { request as undiciRequest } from "undici";
import { ChatService, CompleteRequestSchema, CompleteResponseSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { createSluice, type Sluice } from "../../../src/app/create-sluice.js";
import { parseConfig } from "../../../src/config/load-config.js";
import { createLogger } from "../../../src/telemetry/logger.js";
import { createGrpcFastLane } from "../../../src/server/grpc-fast-lane.js";
import { createConnectNodeHandler } from "../../../src/server/connect-node-handler.js";
import { createActiveCalls } from "../../../src/server/active-calls.js";
import { prepareLaneRoutes } from "../../../src/server/lane-routes.js";
import { registerRouteTable } from "../../../src/server/route-table.js";
import { errorLimits } from "../../../src/errors/bounded-error.js";
import { createGrpcJsClient, readGrpcWebAnswer, toConnectError } from "../../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";
import { createRequestByteBudget } from "../../../src/server/request-byte-budget.js";

/**
 * The gRPC fast lane must put the same bytes, headers and trailers on the wire as
 * connect-node (as the server configures it: connect-node-handler.ts) for every call it
 * takes. One h2c server serves both: `x-lane: general` forces connect-node.
 */
let server: http2.Http2Server;
let session: http2.ClientHttp2Session;
let sluice: Sluice;
const laneServed: string[] = [];

beforeAll(async () => {
  const config = parseConfig(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    },
    {},
  );
  sluice = createSluice(config, { logger: createLogger({ level: "silent" }) });
  const shutdown = new AbortController();
  // As the server configures both (connect's own default ignores unknown fields).
  const jsonOptions = { ignoreUnknownFields: false };
  const general = createConnectNodeHandler({
    routes: (router) => registerRouteTable(router, sluice.routes),
    jsonOptions,
    readMaxBytes: 1024,
    shutdownSignal: shutdown.signal,
    maxDeadlineMs: 2_147_483_647,
  });
  const lane = createGrpcFastLane({
    routes: prepareLaneRoutes(sluice.routes, jsonOptions),
    active: createActiveCalls(shutdown.signal),
    maxRequestBytes: 1024,
    requestBytes: createRequestByteBudget(64 * 1024 * 1024),
  });
  // As the one-port listener does: the lane sees raw streams first; the rest go through
  // node's compatibility layer (a server that owns no connection) to connect-node.
  const compat = http2.createServer(general);
  server = http2.createServer();
  server.on(
    "stream",
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      if (headers["x-lane"] !== "general" && lane(stream, headers)) {
        laneServed.push(headers[":path"] ?? "");
        return;
      }
      compat.emit("stream", stream, headers, flags, rawHeaders);
    },
  );
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

afterAll(async () => {
  session.close();
  server.close();
  await sluice.close();
});

interface Exchange {
  status: number | undefined;
  contentType: string | undefined;
  /** The response's grpc-encoding. */
  encoding: string | undefined;
  body: string;
  trailers: Record<string, string | string[] | undefined>;
}

function call(path: string, body: Uint8Array, lane: "fast" | "general", extra: Record<string, string> = {}): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      "x-lane": lane,
      "x-request-id": "lane-comparison",
      ...extra,
    });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      const { date: _date, ...rest } = trailers;
      resolve({
        status: headers[":status"] as number | undefined,
        contentType: headers["content-type"],
        encoding: headers["grpc-encoding"] as string | undefined,
        // Ids are random per call; everything else must match.
        body: Buffer.concat(chunks)
          .toString("latin1")
          .replace(/demo-[0-9a-f-]{36}/g, "demo-ID"),
        trailers: rest,
      });
    });
    stream.end(body);
  });
}

function frame(message: Uint8Array, flags = 0): Uint8Array {
  const out = Buffer.alloc(5 + message.byteLength);
  out[0] = flags;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

function request(model: string, text = "Hello"): Uint8Array {
  return toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, { model, messages: [{ role: Role.USER, content: [{ part: { case: "text", value: text } }] }] }),
  );
}

const complete = "/sluice.v1.ChatService/Complete";
const streamComplete = "/sluice.v1.ChatService/StreamComplete";
const grpcJson = { "content-type": "application/grpc+json" };
const jsonRequest = (model: string, text = "Hello"): Buffer =>
  Buffer.from(JSON.stringify({ model, messages: [{ role: "ROLE_USER", content: [{ text }] }] }));
const invalidUtf8 = Buffer.concat([
  Buffer.from('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"'),
  Buffer.of(0xc3, 0x28, 0xff),
  Buffer.from('"}]}]}'),
]);
/** A request padded with 100 KB in a field: ~150 bytes gzip'd, 100× the 1 KiB limit decompressed. */
const gzipBomb = gzipSync(request("demo", "x".repeat(100_000)));

async function both(path: string, body: Uint8Array, extra?: Record<string, string>) {
  const before = laneServed.length;
  const fast = await call(path, body, "fast", extra);
  const servedByLane = laneServed.length > before;
  const general = await call(path, body, "general", extra);
  return { fast, general, servedByLane };
}

describe("gRPC fast lane", () => {
  it.each([
    ["a unary completion", "/sluice.v1.ChatService/Complete", frame(request("demo"))],
    ["a streamed completion", "/sluice.v1.ChatService/StreamComplete", frame(request("demo"))],
    ["ListModels", "/sluice.v1.ModelService/ListModels", frame(new Uint8Array(0))],
    ["an unknown model (NOT_FOUND + details)", "/sluice.v1.ChatService/Complete", frame(request("nope"))],
    ["an unknown model on a stream", "/sluice.v1.ChatService/StreamComplete", frame(request("nope"))],
    ["an invalid request (INVALID_ARGUMENT + BadRequest)", "/sluice.v1.ChatService/Complete", frame(request(""))],
    ["a missing message", "/sluice.v1.ChatService/Complete", new Uint8Array(0)],
    ["a missing message on a stream", "/sluice.v1.ChatService/StreamComplete", new Uint8Array(0)],
    [
      "two messages on a stream",
      "/sluice.v1.ChatService/StreamComplete",
      Buffer.concat([frame(request("demo")), frame(request("demo"))]),
    ],
    [
      "two messages on a unary call",
      "/sluice.v1.ChatService/Complete",
      Buffer.concat([frame(request("demo")), frame(request("demo"))]),
    ],
    ["a compressed message without grpc-encoding", "/sluice.v1.ChatService/Complete", frame(request("demo"), 1)],
    ["a message over the size limit", "/sluice.v1.ChatService/Complete", frame(request("demo", "x".repeat(2000)))],
  ])("answers %s exactly as connect-node does", async (_name, path, body) => {
    const { fast, general, servedByLane } = await both(path, body);
    expect(servedByLane).toBe(true);
    expect(fast).toEqual(general);
  });

  it.each([
    ["a unary completion", complete, frame(jsonRequest("demo"))],
    ["a streamed completion", streamComplete, frame(jsonRequest("demo"))],
    ["ListModels", "/sluice.v1.ModelService/ListModels", frame(Buffer.from("{}"))],
    ["an unknown model (NOT_FOUND + details)", complete, frame(jsonRequest("nope"))],
    ["an invalid request (INVALID_ARGUMENT + BadRequest)", streamComplete, frame(jsonRequest(""))],
    ["an unknown field", complete, frame(Buffer.from('{"model":"demo","temprature":1}'))],
    ["text that is not JSON", complete, frame(Buffer.from("{not json"))],
    ["an empty message", complete, frame(new Uint8Array(0))],
    ["JSON that is not UTF-8", complete, frame(invalidUtf8)],
    ["a message over the size limit", complete, frame(jsonRequest("demo", "x".repeat(2000)))],
  ])("grpc+json: answers %s exactly as connect-node does", async (_name, path, body) => {
    const { fast, general, servedByLane } = await both(path, body, grpcJson);
    expect(servedByLane).toBe(true);
    expect(fast.contentType).toBe("application/grpc+json");
    expect(fast).toEqual(general);
  });

  it("grpc+json: an unknown key is quoted in at most 64 characters (connect-node quotes it whole)", async () => {
    const key = "k".repeat(900);
    const body = frame(Buffer.from(`{"model":"demo","${key}":1}`));
    const { fast, general, servedByLane } = await both(complete, body, grpcJson);
    expect(servedByLane).toBe(true);
    expect(fast.trailers["grpc-status"]).toBe("3");
    expect(decodeURIComponent(String(fast.trailers["grpc-message"]))).toMatch(
      /^cannot decode message sluice\.v1\.CompleteRequest from JSON: key "k{1,64}[^k]/,
    );
    expect(String(general.trailers["grpc-message"])).toContain(key);
  });

  it.each([
    ["gzip", complete, frame(gzipSync(request("demo")), 1), { "grpc-encoding": "gzip" }],
    ["br", complete, frame(brotliCompressSync(request("demo")), 1), { "grpc-encoding": "br" }],
    ["gzip on a stream", streamComplete, frame(gzipSync(request("demo")), 1), { "grpc-encoding": "gzip" }],
    ["gzip announced, the message not compressed", complete, frame(request("demo")), { "grpc-encoding": "gzip" }],
    [
      "gzip, the client accepting gzip and identity",
      complete,
      frame(gzipSync(request("demo")), 1),
      { "grpc-encoding": "gzip", "grpc-accept-encoding": "gzip,identity" },
    ],
    ["gzip with grpc+json", complete, frame(gzipSync(jsonRequest("demo")), 1), { ...grpcJson, "grpc-encoding": "gzip" }],
    ["a gzip message that does not decompress", complete, frame(Buffer.from("not gzip"), 1), { "grpc-encoding": "gzip" }],
    ["a br message that does not decompress", complete, frame(Buffer.from("not br"), 1), { "grpc-encoding": "br" }],
    ["a gzip bomb", complete, frame(gzipBomb, 1), { "grpc-encoding": "gzip" }],
    ["a compressed trailer-less empty message", complete, frame(gzipSync(new Uint8Array(0)), 1), { "grpc-encoding": "gzip" }],
  ])("decompresses %s as connect-node does; the answer uncompressed", async (_name, path, body, headers) => {
    const { fast, general, servedByLane } = await both(path, body, headers);
    expect(servedByLane).toBe(true);
    expect(fast.encoding).toBeUndefined();
    // connect-node names the request's encoding back (compressing messages from 1 KiB); the lane answers identity.
    expect(fast).toEqual({ ...general, encoding: undefined });
  });

  it("answers a gzip bomb with RESOURCE_EXHAUSTED and a corrupt message with INVALID_ARGUMENT", async () => {
    const bomb = await call(complete, frame(gzipBomb, 1), "fast", { "grpc-encoding": "gzip" });
    expect(bomb.trailers["grpc-status"]).toBe("8");
    expect(decodeURIComponent(String(bomb.trailers["grpc-message"]))).toBe(
      "message is larger than configured readMaxBytes 1024 after decompression",
    );
    const corrupt = await call(complete, frame(Buffer.from("not br"), 1), "fast", { "grpc-encoding": "br" });
    expect(corrupt.trailers["grpc-status"]).toBe("3");
  });

  it("answers bytes that are not the message with INVALID_ARGUMENT, where connect-node says INTERNAL", async () => {
    const { fast, general, servedByLane } = await both("/sluice.v1.ChatService/Complete", frame(Uint8Array.of(0xff, 0xff, 0xff)));
    expect(servedByLane).toBe(true);
    expect(fast.trailers["grpc-status"]).toBe("3");
    expect(fast.trailers["grpc-message"]).toMatch(/^parse%20binary%3A%20/);
    // connect-node's own binary parse (connect's createBinarySerialization) says INTERNAL, in the same words.
    expect(fast).toEqual({ ...general, trailers: { ...general.trailers, "grpc-status": "3" } });
    expect(general.trailers["grpc-status"]).toBe("13");
  });

  it("clamps a grpc-timeout past what a timer holds (597H) and serves the stream as connect-node does", async () => {
    const { fast, general, servedByLane } = await both("/sluice.v1.ChatService/StreamComplete", frame(request("demo")), {
      "grpc-timeout": "597H",
    });
    expect(servedByLane).toBe(true);
    expect(fast.trailers["grpc-status"]).toBe("0");
    expect(fast).toEqual(general);
  });

  it("answers a compressed body that does not decompress with INVALID_ARGUMENT (connect-node), gzip and br alike", async () => {
    const garbage = frame(Buffer.from("not compressed at all"), 1);
    for (const encoding of ["gzip", "br"]) {
      const answer = await call("/sluice.v1.ChatService/Complete", garbage, "fast", { "grpc-encoding": encoding });
      expect(answer.trailers["grpc-status"], encoding).toBe("3");
      expect(answer.trailers["grpc-message"], encoding).toBe("decompression%20failed");
    }
    // Their size limit stays: a message that decompresses past readMaxBytes is RESOURCE_EXHAUSTED.
    const big = toBinary(CompleteRequestSchema, create(CompleteRequestSchema, { model: "x".repeat(4096) }));
    for (const [encoding, compressed] of [
      ["gzip", gzipSync(big)],
      ["br", brotliCompressSync(big)],
    ] as const) {
      const answer = await call("/sluice.v1.ChatService/Complete", frame(compressed, 1), "fast", { "grpc-encoding": encoding });
      expect(answer.trailers["grpc-status"], encoding).toBe("8");
    }
  });

  it("answers an already expired grpc-timeout with DEADLINE_EXCEEDED as connect-node does", async () => {
    const { fast, general } = await both("/sluice.v1.ChatService/Complete", frame(request("demo")), { "grpc-timeout": "0n" });
    expect(fast.trailers["grpc-status"]).toBe("4");
    expect(fast).toEqual(general);
  });

  it("leaves unknown encodings and malformed timeouts to connect-node", async () => {
    const before = laneServed.length;
    const deflate = await call("/sluice.v1.ChatService/Complete", frame(request("demo")), "fast", { "grpc-encoding": "deflate" });
    const badTimeout = await call("/sluice.v1.ChatService/Complete", frame(request("demo")), "fast", { "grpc-timeout": "soon" });
    expect(laneServed.length).toBe(before);
    // What connect-node answers to each. Trailers as plain string fields (node adds a symbol-keyed list of sensitive headers).
    const fields = (answer: Exchange) => ({ ...answer, trailers: Object.fromEntries(Object.entries(answer.trailers)) });
    // An unknown encoding: UNIMPLEMENTED (12), naming the supported ones.
    expect(fields(deflate)).toMatchObject({
      status: 200,
      trailers: { "grpc-status": "12", "grpc-message": expect.stringMatching(/^unknown%20compression%20%22deflate%22/) },
    });
    // A malformed grpc-timeout: INVALID_ARGUMENT (3).
    expect(fields(badTimeout)).toEqual({
      status: 200,
      contentType: "application/grpc+proto",
      encoding: undefined,
      body: "",
      trailers: { "grpc-status": "3", "grpc-message": "protocol%20error%3A%20invalid%20grpc%20timeout%20value%3A%20soon" },
    });
  });
});

/*
 * An error an interceptor throws, however large, is bounded by every lane before it is
 * written (bounded-error.ts): a stock gRPC client (grpc-js: 8 KiB of metadata) still reads
 * the error's own code, not RESOURCE_EXHAUSTED or INTERNAL for trailers it cannot take.
 */
describe("every lane bounds the errors it writes", () => {
  let bounded: StartedSluice;
  const hugeError = (): ConnectError => {
    const metadata = new Headers();
    for (let i = 0; i < 200; i++) metadata.set(`x-huge-${i}`, "v".repeat(100));
    // No reserved URI character: grpc-js decodes grpc-message with decodeURI, which leaves them encoded.
    return new ConnectError(`refused ${"why ".repeat(20_000)}`, Code.FailedPrecondition, metadata);
  };
  const thrower: Interceptor = (next) => (req) => {
    if (req.header.get("x-huge-error") !== null) throw hugeError();
    return next(req);
  };

  beforeAll(async () => {
    bounded = await startSluice(
      {
        providers: { demo: { type: "demo", wordDelayMs: 0 } },
        models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
      },
      { interceptors: (chain) => [thrower, ...chain] },
    );
  });
  afterAll(() => bounded.close());

  const hello = create(CompleteRequestSchema, {
    model: "demo",
    messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hello" } }] }],
  });

  it("gRPC (grpc-js, a stock client): FAILED_PRECONDITION, its message cut, unary and streaming", async () => {
    const client = createGrpcJsClient(bounded.url);
    try {
      const unary = await client.unary(ChatService.method.complete, hello, { metadata: { "x-huge-error": "1" } }).then(
        () => undefined,
        (err: unknown) => toConnectError(err),
      );
      expect(unary?.code).toBe(Code.FailedPrecondition);
      expect(unary!.rawMessage.length).toBeLessThanOrEqual(errorLimits.maxMessageLength);
      expect(unary!.rawMessage).toMatch(/^refused why why .*…$/);
      const stream = client.serverStream(ChatService.method.streamComplete, hello, { metadata: { "x-huge-error": "1" } });
      const streamed = await (async () => {
        try {
          for await (const _ of stream) {
            // no event is expected
          }
          return undefined;
        } catch (err) {
          return toConnectError(err);
        }
      })();
      expect(streamed?.code).toBe(Code.FailedPrecondition);
    } finally {
      client.close();
    }
  });

  it("gRPC-Web and Connect: the error body and trailers within the bound", async () => {
    const web = await undiciRequest(`${bounded.url}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-huge-error": "1" },
      body: frame(toBinary(CompleteRequestSchema, hello)),
    });
    const webBody = Buffer.from(await web.body.arrayBuffer());
    expect(webBody.byteLength).toBeLessThanOrEqual(errorLimits.maxEncodedBytes + 64);
    expect(readGrpcWebAnswer(webBody, CompleteResponseSchema).error?.code).toBe(Code.FailedPrecondition);
    for (const [path, contentType] of [
      ["/sluice.v1.ChatService/Complete", "application/json"],
      ["/sluice.v1.ChatService/StreamComplete", "application/connect+json"],
    ] as const) {
      const json = '{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"Hello"}]}]}';
      const answer = await undiciRequest(bounded.url + path, {
        method: "POST",
        headers: { "content-type": contentType, "x-huge-error": "1" },
        body: contentType === "application/json" ? json : frame(Buffer.from(json)),
      });
      const body = await answer.body.text();
      expect(body, path).toContain("failed_precondition");
      expect(body.length, path).toBeLessThanOrEqual(errorLimits.maxEncodedBytes);
    }
  });
});
