import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CompleteRequestSchema,
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { streamEndError, unaryJsonError } from "../helpers/error-answers.js";
import { envelope, http1Request, ordinaryCall, parseEnvelopes, type RawAnswer } from "../helpers/raw-http.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

/*
 * Issue 18, finding 7: `application/grpc-web-text` — the stock grpc-web client's default
 * mode — got 415; `connect-protocol-version: 2` was accepted; `/healthz?x=1` was 404.
 */

let sluice: StartedSluice;

beforeAll(async () => {
  sluice = await startSluice();
});
afterAll(async () => {
  await sluice?.close();
});

const request = create(CompleteRequestSchema, {
  model: "demo",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hello in text mode" } }] }],
});
const requestJson = JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "hello" }] }] });

/** What the stock grpc-web client (grpc-web-javascript, mode grpcwebtext) sends. */
const grpcWebTextHeaders = {
  "content-type": "application/grpc-web-text",
  accept: "application/grpc-web-text",
  "x-grpc-web": "1",
  "x-user-agent": "grpc-web-javascript/0.1",
};

/**
 * A grpc-web-text body: base64, possibly several padded segments one after another (a
 * server may encode each frame on its own). Each 4-character group decodes on its own.
 */
function decodeBase64Segments(text: string): Buffer {
  const clean = text.replace(/\s/g, "");
  const parts: Buffer[] = [];
  for (let i = 0; i < clean.length; i += 4) parts.push(Buffer.from(clean.slice(i, i + 4), "base64"));
  return Buffer.concat(parts);
}

/** The data frames and the trailer text of a gRPC-Web answer body (already base64-decoded). */
function grpcWebFrames(body: Buffer): { messages: Buffer[]; trailer: string } {
  const frames = parseEnvelopes(body);
  return {
    messages: frames.filter((f) => (f.flags & 0x80) === 0).map((f) => f.data),
    trailer: frames.find((f) => (f.flags & 0x80) === 0x80)?.data.toString() ?? "",
  };
}

function postGrpcWebText(path: string, message: Uint8Array): Promise<RawAnswer> {
  return http1Request(sluice.port, {
    path,
    headers: grpcWebTextHeaders,
    body: envelope(message).toString("base64"),
  });
}

describe("gRPC-Web text mode (finding 7)", () => {
  it("unary: served, the answer base64 in application/grpc-web-text, grpc-status 0", async () => {
    const [answer, ordinary] = await Promise.all([
      postGrpcWebText("/sluice.v1.ChatService/Complete", toBinary(CompleteRequestSchema, request)),
      ordinaryCall(sluice.port),
    ]);
    expect(ordinary.provider).toBe("demo");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^application\/grpc-web-text/);
    const { messages, trailer } = grpcWebFrames(decodeBase64Segments(answer.body.toString()));
    expect(trailer).toMatch(/grpc-status: ?0\r\n/);
    expect(messages).toHaveLength(1);
    expect(fromBinary(CompleteResponseSchema, messages[0]!).provider).toBe("demo");
  });

  it("server streaming: every event, then grpc-status 0", async () => {
    const answer = await postGrpcWebText("/sluice.v1.ChatService/StreamComplete", toBinary(CompleteRequestSchema, request));
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^application\/grpc-web-text/);
    const { messages, trailer } = grpcWebFrames(decodeBase64Segments(answer.body.toString()));
    expect(trailer).toMatch(/grpc-status: ?0\r\n/);
    const events = messages.map((m) => fromBinary(StreamCompleteResponseSchema, m).event.case);
    expect(events[0]).toBe("start");
    expect(events.at(-1)).toBe("done");
  });

  it("an invalid request: INVALID_ARGUMENT in the (base64) trailer", async () => {
    const answer = await postGrpcWebText(
      "/sluice.v1.ChatService/Complete",
      toBinary(CompleteRequestSchema, create(CompleteRequestSchema, { model: "demo" })),
    );
    expect(answer.status).toBe(200);
    const { trailer } = grpcWebFrames(decodeBase64Segments(answer.body.toString()));
    expect(trailer).toMatch(/grpc-status: ?3\r\n/);
  });

  it("a body that is not base64: INVALID_ARGUMENT, and the server keeps serving", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: grpcWebTextHeaders,
      body: "!!!! not base64 ****",
    });
    const text = answer.headers["content-type"]?.startsWith("application/grpc-web-text")
      ? decodeBase64Segments(answer.body.toString())
      : answer.body;
    const status = answer.headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(grpcWebFrames(text).trailer)?.[1];
    expect(String(status)).toBe("3");
    expect((await ordinaryCall(sluice.port)).provider).toBe("demo");
  });
});

/** A Connect answer's error, unary (the body) or streaming (the end-of-stream envelope). */
function connectError(answer: RawAnswer) {
  return answer.headers["content-type"]?.startsWith("application/connect+")
    ? streamEndError(answer.body)
    : unaryJsonError(answer);
}

describe("connect-protocol-version (finding 7)", () => {
  it("2 on a unary call: 400 INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/json", "connect-protocol-version": "2" },
      body: requestJson,
    });
    expect(answer.status).toBe(400);
    expect(unaryJsonError(answer).code).toBe("invalid_argument");
  });

  it("2 on a unary binary call (connect-node): 400 INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/proto", "connect-protocol-version": "2" },
      body: Buffer.from(toBinary(CompleteRequestSchema, request)),
    });
    expect(answer.status).toBe(400);
  });

  it("2 on a streaming call: INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/StreamComplete",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "2" },
      body: envelope(Buffer.from(requestJson)),
    });
    expect(connectError(answer)?.code).toBe("invalid_argument");
  });

  it("1, and no header at all, are still served", async () => {
    for (const headers of [{ "connect-protocol-version": "1" }, {}]) {
      const answer = await http1Request(sluice.port, {
        path: "/sluice.v1.ChatService/Complete",
        headers: { "content-type": "application/json", ...headers },
        body: requestJson,
      });
      expect(answer.status).toBe(200);
    }
  });
});

describe("/healthz with a query string (finding 7)", () => {
  it.each(["/healthz?x=1", "/healthz?", "/healthz?probe=lb&t=123"])("GET %s: 200 SERVING, as /healthz", async (path) => {
    const answer = await http1Request(sluice.port, { method: "GET", path });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ status: "SERVING" });
  });

  it("HEAD /healthz?x=1: 200, no body", async () => {
    const answer = await http1Request(sluice.port, { method: "HEAD", path: "/healthz?x=1" });
    expect(answer.status).toBe(200);
    expect(answer.body.length).toBe(0);
  });

  it("another path is still 404: /healthzz, /healthz/x", async () => {
    for (const path of ["/healthzz", "/healthz/x"]) {
      expect((await http1Request(sluice.port, { method: "GET", path })).status).toBe(404);
    }
  });
});

describe("/healthz exposure (finding 8)", () => {
  it("on the serving port it says whether the server serves, and nothing about deployments or breakers", async () => {
    const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz" });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString())).toEqual({ status: "SERVING" });
    expect(answer.body.toString()).not.toContain("sluice-demo-1");
  });
});
