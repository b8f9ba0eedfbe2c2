import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { startLaneComparison, type LaneComparison } from "../../helpers/lane-comparison.js";
import { createConnectUnaryFastLane } from "../../../src/server/connect-unary-fast-lane.js";

/**
 * The fast lane must answer exactly as connect-node does for every request it takes. One
 * server serves both: `x-lane: general` forces connect-node, anything else tries the lane.
 */
let rig: LaneComparison;
let origin: string;
let laneServed: string[];

beforeAll(async () => {
  rig = await startLaneComparison(({ routes, active, jsonOptions, maxRequestBytes }) =>
    createConnectUnaryFastLane({ routes, active, maxRequestBytes, jsonOptions }),
  );
  ({ origin, laneServed } = rig);
});

afterAll(() => rig.close());

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
