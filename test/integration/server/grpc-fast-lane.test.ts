import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http2 from "node:http2";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { createSluice, type Sluice } from "../../../src/app/create-sluice.js";
import { parseConfig } from "../../../src/config/load-config.js";
import { createLogger } from "../../../src/telemetry/logger.js";
import { createGrpcFastLane } from "../../../src/server/grpc-fast-lane.js";
import { createActiveCalls } from "../../../src/server/active-calls.js";
import { prepareLaneRoutes } from "../../../src/server/lane-routes.js";
import { registerRouteTable } from "../../../src/server/route-table.js";

/**
 * The gRPC fast lane must put the same bytes, headers and trailers on the wire as
 * connect-node for every call it takes. One h2c server serves both: `x-lane: general`
 * forces connect-node.
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
  const general = connectNodeAdapter({
    routes: (router) => registerRouteTable(router, sluice.routes),
    readMaxBytes: 1024,
    shutdownSignal: shutdown.signal,
  });
  const lane = createGrpcFastLane({
    routes: prepareLaneRoutes(sluice.routes, {}),
    active: createActiveCalls(shutdown.signal),
    maxRequestBytes: 1024,
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
    ["bytes that are not the message", "/sluice.v1.ChatService/Complete", frame(Uint8Array.of(0xff, 0xff, 0xff))],
    ["a message over the size limit", "/sluice.v1.ChatService/Complete", frame(request("demo", "x".repeat(2000)))],
  ])("answers %s exactly as connect-node does", async (_name, path, body) => {
    const { fast, general, servedByLane } = await both(path, body);
    expect(servedByLane).toBe(true);
    expect(fast).toEqual(general);
  });

  it("answers an already expired grpc-timeout with DEADLINE_EXCEEDED as connect-node does", async () => {
    const { fast, general } = await both("/sluice.v1.ChatService/Complete", frame(request("demo")), { "grpc-timeout": "0n" });
    expect(fast.trailers["grpc-status"]).toBe("4");
    expect(fast).toEqual(general);
  });

  it("leaves compression, grpc+json and malformed timeouts to connect-node", async () => {
    const before = laneServed.length;
    const gzip = await call("/sluice.v1.ChatService/Complete", frame(request("demo")), "fast", { "grpc-encoding": "gzip" });
    const json = await call("/sluice.v1.ChatService/Complete", frame(new Uint8Array(0)), "fast", {
      "content-type": "application/grpc+json",
    });
    const badTimeout = await call("/sluice.v1.ChatService/Complete", frame(request("demo")), "fast", { "grpc-timeout": "soon" });
    expect(laneServed.length).toBe(before);
    // What connect-node answers to each. gzip allowed but the message not compressed: served in full.
    const plain = await call("/sluice.v1.ChatService/Complete", frame(request("demo")), "general");
    expect(plain).toMatchObject({ status: 200, contentType: "application/grpc+proto", trailers: { "grpc-status": "0" } });
    expect(gzip).toEqual(plain);
    // Trailers as plain string fields (node adds a symbol-keyed list of sensitive headers).
    const fields = (answer: Exchange) => ({ ...answer, trailers: Object.fromEntries(Object.entries(answer.trailers)) });
    // grpc+json with an empty message: INVALID_ARGUMENT (3), the JSON decode error in grpc-message.
    expect(fields(json)).toEqual({
      status: 200,
      contentType: "application/grpc+json",
      body: "",
      trailers: {
        "grpc-status": "3",
        "grpc-message": expect.stringMatching(/^cannot%20decode%20message%20sluice\.v1\.CompleteRequest%20from%20JSON%3A%20/),
      },
    });
    // A malformed grpc-timeout: INVALID_ARGUMENT (3).
    expect(fields(badTimeout)).toEqual({
      status: 200,
      contentType: "application/grpc+proto",
      body: "",
      trailers: { "grpc-status": "3", "grpc-message": "protocol%20error%3A%20invalid%20grpc%20timeout%20value%3A%20soon" },
    });
  });
});
