import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { request } from "undici";
import { createSluice, type Sluice } from "../app.js";
import { parseConfig } from "../config/load-config.js";
import { createLogger } from "../telemetry/logger.js";
import { createConnectUnaryFastLane } from "./connect-unary-fast-lane.js";

/**
 * The fast lane must answer exactly as connect-node does for every request it takes. One
 * server serves both: `x-lane: general` forces connect-node, anything else tries the lane.
 */
let server: Server;
let sluice: Sluice;
let origin: string;
const laneServed: string[] = [];

beforeAll(async () => {
  const config = parseConfig(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0, responseDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    },
    {},
  );
  sluice = createSluice(config, { logger: createLogger({ level: "silent" }) });
  const jsonOptions = { ignoreUnknownFields: false };
  const shutdown = new AbortController();
  const general = connectNodeAdapter({
    routes: (router) => sluice.registerRoutes(router),
    jsonOptions,
    readMaxBytes: 1024,
    shutdownSignal: shutdown.signal,
  });
  const lane = createConnectUnaryFastLane({
    routes: sluice.unaryRoutes,
    interceptors: sluice.interceptors,
    maxRequestBytes: 1024,
    jsonOptions,
    shutdownSignal: shutdown.signal,
  });
  server = createServer((req, res) => {
    if (req.headers["x-lane"] !== "general" && lane(req, res)) {
      laneServed.push(req.url ?? "");
      return;
    }
    general(req, res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await sluice.close();
});

async function both(path: string, body: string, headers: Record<string, string>) {
  const answer = async (lane: "fast" | "general") => {
    const res = await request(origin + path, {
      method: "POST",
      body,
      headers: { ...headers, "x-lane": lane },
    });
    const text = await res.body.text();
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
const hello = JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "Hello" }] }] });

describe("Connect unary JSON fast lane", () => {
  it.each([
    ["a completion", "/sluice.v1.ChatService/Complete", hello, json],
    ["a completion with charset and protocol version", "/sluice.v1.ChatService/Complete", hello, {
      "content-type": "application/json; charset=utf-8",
      "connect-protocol-version": "1",
    }],
    ["ListModels", "/sluice.v1.ModelService/ListModels", "{}", json],
    ["an unknown model (404 + ErrorInfo)", "/sluice.v1.ChatService/Complete", hello.replace('"demo"', '"nope"'), json],
    ["an invalid request (400 + BadRequest)", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: "demo", messages: [] }), json],
    ["malformed JSON", "/sluice.v1.ChatService/Complete", '{"model": "demo", ', json],
    ["an unknown field", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: "demo", temprature: 1 }), json],
    ["a wrong field type", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: 42 }), json],
    ["a body over the size limit", "/sluice.v1.ChatService/Complete", JSON.stringify({ model: "x".repeat(2000) }), json],
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

  it("leaves what it does not handle to connect-node", async () => {
    const before = laneServed.length;
    const binary = await request(`${origin}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      body: new Uint8Array(0),
      headers: { "content-type": "application/proto" },
    });
    await binary.body.text();
    const gzip = await request(`${origin}/sluice.v1.ChatService/Complete`, {
      method: "POST",
      body: "x",
      headers: { ...json, "content-encoding": "gzip" },
    });
    await gzip.body.text();
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
    expect(binary.statusCode).toBe(400);
    expect(gzip.statusCode).not.toBe(200);
    expect(badTimeout.statusCode).toBe(400);
    expect(streaming.statusCode).toBe(415);
  });
});
