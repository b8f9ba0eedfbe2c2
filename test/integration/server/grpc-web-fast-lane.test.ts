import { randomUUID } from "node:crypto";
import * as http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request as undiciRequest } from "undici";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, type Interceptor } from "@connectrpc/connect";
import {
  CompleteRequestSchema,
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
} from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { decodeGrpcWebText, grpcWebFrames, readGrpcWebAnswer } from "../../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";

/*
 * The gRPC-Web fast lane. Binary mode must answer exactly as connect-node does: two servers,
 * one with the lanes and one serving everything through connect-node (the reference), get
 * the same requests over HTTP/1.1 and HTTP/2 and must give the same status, headers and
 * bytes. Text mode has no reference (connect-node answers 415): its answers are decoded here
 * as the grpc-web JavaScript client decodes them, and must be the binary answer, base64.
 */

type Via = "h1" | "h2";
type Mode = "lanes" | "connect-node";

const document = {
  providers: { demo: { type: "demo", wordDelayMs: 0, responseDelayMs: 0 } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
  server: { maxRequestBytes: 1024 },
};

const complete = "/sluice.v1.ChatService/Complete";
const streamComplete = "/sluice.v1.ChatService/StreamComplete";
const listModels = "/sluice.v1.ModelService/ListModels";

/** Who served each call, by its `x-test-call` header: a lane's request carries its context. */
const servedBy = new Map<string, Mode>();
const marker: Interceptor = (next) => (req) => {
  servedBy.set(req.header.get("x-test-call") ?? "", "context" in req ? "lanes" : "connect-node");
  return next(req);
};

const servers = new Map<Mode, StartedSluice>();
const sessions = new Map<Mode, http2.ClientHttp2Session>();

beforeAll(async () => {
  for (const mode of ["lanes", "connect-node"] as const) {
    const server = await startSluice(document, {
      fastLanes: mode === "lanes",
      interceptors: (chain) => [marker, ...chain],
    });
    servers.set(mode, server);
    sessions.set(mode, http2.connect(server.url));
  }
});

afterAll(async () => {
  for (const session of sessions.values()) session.close();
  await Promise.all([...servers.values()].map((server) => server.close()));
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** Headers a comparison leaves out: the date, and HTTP/1.1 framing. */
const varying = new Set(["date", "connection", "keep-alive", "transfer-encoding"]);

async function post(mode: Mode, via: Via, path: string, body: Uint8Array, given: Record<string, string>): Promise<Answer> {
  const server = servers.get(mode)!;
  // One request id both ways: every answer echoes it (in headers, or an error's ErrorInfo).
  const headers = { "x-request-id": "lane-comparison", ...given };
  if (via === "h1") {
    const res = await undiciRequest(server.url + path, { method: "POST", body, headers });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    const kept: Record<string, string> = {};
    for (const [key, value] of Object.entries(res.headers)) if (!varying.has(key)) kept[key] = String(value);
    return { status: res.statusCode, headers: kept, body: bytes };
  }
  return new Promise((resolve, reject) => {
    const stream = sessions.get(mode)!.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let response: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (response = h));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      const kept: Record<string, string> = {};
      for (const [key, value] of Object.entries(response)) {
        if (!key.startsWith(":") && !varying.has(key)) kept[key] = String(value);
      }
      resolve({ status: Number(response[":status"]), headers: kept, body: Buffer.concat(chunks) });
    });
    stream.end(body);
  });
}

/** Random ids (`demo-<uuid>`) made comparable; everything else must match. */
function comparable(answer: Answer) {
  return { ...answer, body: answer.body.toString("latin1").replace(/demo-[0-9a-f-]{36}/g, "demo-<uuid>") };
}

function frame(message: Uint8Array, flags = 0): Buffer {
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

const binary = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
const text = { "content-type": "application/grpc-web-text", "x-grpc-web": "1", accept: "application/grpc-web-text" };

const gzipBinary = { ...binary, "grpc-encoding": "gzip" };
const brBinary = { ...binary, "grpc-encoding": "br" };
const webJson = { "content-type": "application/grpc-web+json", "x-grpc-web": "1" };
const jsonRequest = (model: string, text = "Hello"): Buffer =>
  Buffer.from(JSON.stringify({ model, messages: [{ role: "ROLE_USER", content: [{ text }] }] }));
/** A request padded with 100 KB in a field: ~150 bytes gzip'd, 100× the 1 KiB limit decompressed. */
const gzipBomb = gzipSync(request("demo", "x".repeat(100_000)));

/**
 * An answer without its `grpc-encoding` header: connect-node names the request's encoding
 * back (compressing messages from 1 KiB), the lane answers identity, which the protocol
 * allows. The answers here are small: their bytes are the same.
 */
function uncompressed(answer: Answer): Answer {
  const { "grpc-encoding": _encoding, ...headers } = answer.headers;
  return { ...answer, headers };
}

/** One request to both servers; who served it on each (undefined: it never reached the interceptors). */
async function both(via: Via, path: string, body: Uint8Array, headers: Record<string, string>) {
  const ids = { lanes: randomUUID(), reference: randomUUID() };
  const lanes = await post("lanes", via, path, body, { ...headers, "x-test-call": ids.lanes });
  const reference = await post("connect-node", via, path, body, { ...headers, "x-test-call": ids.reference });
  return { lanes, reference, servedBy: { lanes: servedBy.get(ids.lanes), reference: servedBy.get(ids.reference) } };
}

describe.each(["h1", "h2"] as const)("gRPC-Web fast lane over %s", (via) => {
  it.each([
    ["a unary completion", complete, frame(request("demo"))],
    ["a streamed completion", streamComplete, frame(request("demo"))],
    ["ListModels", listModels, frame(new Uint8Array(0))],
    ["an unknown model (NOT_FOUND + details)", complete, frame(request("nope"))],
    ["an unknown model on a stream", streamComplete, frame(request("nope"))],
    ["an invalid request (INVALID_ARGUMENT + BadRequest)", complete, frame(request(""))],
    ["a missing message", complete, new Uint8Array(0)],
    ["a missing message on a stream", streamComplete, new Uint8Array(0)],
    ["only a trailer envelope (skipped, as connect does)", complete, frame(new Uint8Array(0), 0x80)],
    ["two messages on a stream", streamComplete, Buffer.concat([frame(request("demo")), frame(request("demo"))])],
    ["a truncated envelope", complete, frame(request("demo")).subarray(0, 12)],
    ["a compressed message without grpc-encoding", complete, frame(request("demo"), 1)],
    ["a message over the size limit", complete, frame(request("demo", "x".repeat(2000)))],
  ])("answers %s exactly as connect-node does", async (_name, path, body) => {
    const answers = await both(via, path, body, binary);
    expect(comparable(answers.lanes)).toEqual(comparable(answers.reference));
    // The lane took it on the lanes server: connect-node never did (a call that fails before the
    // implementation, on a stream, reaches connect-node's interceptors but not the lane's).
    expect(answers.servedBy.lanes).not.toBe("connect-node");
    if (path !== streamComplete && answers.servedBy.reference !== undefined) expect(answers.servedBy.lanes).toBe("lanes");
  });

  it.each([
    ["content-type application/grpc-web (no +proto)", { "content-type": "application/grpc-web" }],
    ["an already expired grpc-timeout", { "grpc-timeout": "0n" }],
    ["a grpc-timeout past what a timer holds (597H): clamped, the stream runs to its end", { "grpc-timeout": "597H" }],
  ])("answers %s exactly as connect-node does", async (_name, extra) => {
    const answers = await both(via, streamComplete, frame(request("demo")), { ...binary, ...extra });
    expect(comparable(answers.lanes)).toEqual(comparable(answers.reference));
    expect(answers.servedBy.lanes).toBe("lanes");
  });

  it("answers bytes that are not the message with INVALID_ARGUMENT, where connect-node says INTERNAL", async () => {
    const answers = await both(via, complete, frame(Uint8Array.of(0xff, 0xff, 0xff)), binary);
    const lanes = readGrpcWebAnswer(answers.lanes.body, CompleteResponseSchema);
    const reference = readGrpcWebAnswer(answers.reference.body, CompleteResponseSchema);
    expect(lanes.error?.code).toBe(Code.InvalidArgument);
    // connect-node's binary parse (connect's createBinarySerialization) says INTERNAL, with the same words.
    expect(reference.error?.code).toBe(Code.Internal);
    expect(lanes.error?.rawMessage).toBe(reference.error?.rawMessage);
    expect(lanes.error?.rawMessage).toMatch(/^parse binary: /);
  });

  it.each([
    ["a unary completion", complete, frame(jsonRequest("demo"))],
    ["a streamed completion", streamComplete, frame(jsonRequest("demo"))],
    ["ListModels", listModels, frame(Buffer.from("{}"))],
    ["an unknown model (NOT_FOUND + details)", complete, frame(jsonRequest("nope"))],
    ["an invalid request (INVALID_ARGUMENT + BadRequest)", complete, frame(jsonRequest(""))],
    ["an unknown field", complete, frame(Buffer.from('{"model":"demo","temprature":1}'))],
    ["text that is not JSON", complete, frame(Buffer.from("{not json"))],
    ["a message over the size limit", complete, frame(jsonRequest("demo", "x".repeat(2000)))],
  ])("grpc-web+json: answers %s exactly as connect-node does", async (_name, path, body) => {
    const answers = await both(via, path, body, webJson);
    expect(answers.lanes.headers["content-type"]).toBe("application/grpc-web+json");
    expect(comparable(answers.lanes)).toEqual(comparable(answers.reference));
    expect(answers.servedBy.lanes).not.toBe("connect-node");
    if (path !== streamComplete && answers.servedBy.reference !== undefined) expect(answers.servedBy.lanes).toBe("lanes");
  });

  it.each([
    ["gzip", complete, frame(gzipSync(request("demo")), 1), gzipBinary],
    ["br", complete, frame(brotliCompressSync(request("demo")), 1), brBinary],
    ["gzip on a stream", streamComplete, frame(gzipSync(request("demo")), 1), gzipBinary],
    ["gzip with grpc-web+json", complete, frame(gzipSync(jsonRequest("demo")), 1), { ...webJson, "grpc-encoding": "gzip" }],
    ["gzip announced, the message not compressed", complete, frame(request("demo")), gzipBinary],
    [
      "gzip, the client accepting gzip",
      complete,
      frame(gzipSync(request("demo")), 1),
      { ...gzipBinary, "grpc-accept-encoding": "gzip" },
    ],
    ["a gzip message that does not decompress", complete, frame(Buffer.from("not gzip"), 1), gzipBinary],
    ["a br message that does not decompress", complete, frame(Buffer.from("not br"), 1), brBinary],
    ["a gzip bomb", complete, frame(gzipBomb, 1), gzipBinary],
  ])("decompresses %s as connect-node does; the answer uncompressed", async (_name, path, body, headers) => {
    const answers = await both(via, path, body, headers);
    expect(answers.lanes.headers["grpc-encoding"]).toBeUndefined();
    expect(comparable(answers.lanes)).toEqual(comparable(uncompressed(answers.reference)));
    expect(answers.servedBy.lanes).not.toBe("connect-node");
  });

  it("answers a gzip bomb with RESOURCE_EXHAUSTED and a corrupt message with INVALID_ARGUMENT", async () => {
    const bomb = await post("lanes", via, complete, frame(gzipBomb, 1), { ...binary, "grpc-encoding": "gzip" });
    expect(readGrpcWebAnswer(bomb.body, CompleteResponseSchema).error).toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "message is larger than configured readMaxBytes 1024 after decompression",
    });
    const corrupt = await post("lanes", via, complete, frame(Buffer.from("not br"), 1), { ...binary, "grpc-encoding": "br" });
    expect(readGrpcWebAnswer(corrupt.body, CompleteResponseSchema).error?.code).toBe(Code.InvalidArgument);
  });

  it("leaves unknown encodings and (binary mode) a malformed grpc-timeout to connect-node", async () => {
    const deflate = await both(via, complete, frame(request("demo")), { ...binary, "grpc-encoding": "deflate" });
    expect(comparable(deflate.lanes)).toEqual(comparable(deflate.reference));
    expect(readGrpcWebAnswer(deflate.lanes.body, CompleteResponseSchema).error?.code).toBe(Code.Unimplemented);
    const badTimeout = await both(via, complete, frame(request("demo")), { ...binary, "grpc-timeout": "soon" });
    expect(comparable(badTimeout.lanes)).toEqual(comparable(badTimeout.reference));
    expect(readGrpcWebAnswer(badTimeout.lanes.body, CompleteResponseSchema).error?.code).toBe(Code.InvalidArgument);
  });
});

/** A text-mode answer, decoded as the grpc-web JavaScript client decodes it. */
function textAnswer<D extends Parameters<typeof readGrpcWebAnswer>[1]>(answer: Answer, schema: D) {
  expect(answer.status).toBe(200);
  expect(answer.headers["content-type"]).toBe("application/grpc-web-text+proto");
  return readGrpcWebAnswer(decodeGrpcWebText(answer.body.toString("latin1")), schema);
}

const base64 = (bytes: Uint8Array): Buffer => Buffer.from(Buffer.from(bytes).toString("base64"), "latin1");

describe.each(["h1", "h2"] as const)("gRPC-Web text mode over %s (the stock grpc-web client's default)", (via) => {
  it("a unary completion: the binary answer, base64", async () => {
    const textual = await post("lanes", via, complete, base64(frame(request("demo"))), text);
    const { messages, error, trailer } = textAnswer(textual, CompleteResponseSchema);
    expect(error).toBeUndefined();
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ provider: "demo", model: "sluice-demo-1" });
    expect(trailer.get("grpc-status")).toBe("0");
    // Byte for byte what binary mode answers (which is connect-node's answer).
    const binaryAnswer = await post("lanes", via, complete, frame(request("demo")), binary);
    expect(
      decodeGrpcWebText(textual.body.toString("latin1"))
        .toString("latin1")
        .replace(/demo-[0-9a-f-]{36}/g, "demo-<uuid>"),
    ).toBe(comparable(binaryAnswer).body);
  });

  it("a streamed completion: one base64 envelope per event, then the trailers", async () => {
    const answer = await post("lanes", via, streamComplete, base64(frame(request("demo", "stream me some words"))), text);
    const { messages, error, trailer } = textAnswer(answer, StreamCompleteResponseSchema);
    expect(error).toBeUndefined();
    const kinds = messages.map((message) => message.event.case);
    expect(kinds[0]).toBe("start");
    expect(kinds.at(-1)).toBe("done");
    expect(kinds.filter((kind) => kind === "delta").length).toBeGreaterThan(1);
    expect(trailer.get("grpc-status")).toBe("0");
    expect(trailer.get("sluice-provider")).toBe("demo");
    // Each envelope is base64 of its own: as many padded pieces as frames (ids aside, padding falls between them).
    expect(grpcWebFrames(decodeGrpcWebText(answer.body.toString("latin1")))).toHaveLength(messages.length + 1);
  });

  it("an error: no message, the status and its details in the trailer envelope", async () => {
    const answer = await post("lanes", via, streamComplete, base64(frame(request("nope"))), text);
    const { messages, error } = textAnswer(answer, StreamCompleteResponseSchema);
    expect(messages).toEqual([]);
    expect(error?.code).toBe(Code.NotFound);
    expect(error?.rawMessage).toMatch(/model "nope" is not served/);
    expect(error?.findDetails(ErrorInfoSchema)).toMatchObject([{ reason: "MODEL_NOT_FOUND", domain: "sluice" }]);
  });

  it("a request in several base64 chunks, each padded", async () => {
    const whole = frame(request("demo"));
    const chunked = Buffer.concat([base64(whole.subarray(0, 4)), base64(whole.subarray(4, 9)), base64(whole.subarray(9))]);
    expect(chunked.toString("latin1").slice(0, -2)).toContain("=");
    const { messages, error } = textAnswer(await post("lanes", via, complete, chunked, text), CompleteResponseSchema);
    expect(error).toBeUndefined();
    expect(messages[0]?.provider).toBe("demo");
  });

  it.each([
    ["a body that is not base64", Buffer.from("not base64!"), {}, Code.InvalidArgument, /not valid base64/],
    [
      "a malformed grpc-timeout",
      base64(frame(request("demo"))),
      { "grpc-timeout": "soon" },
      Code.InvalidArgument,
      /invalid grpc timeout value: soon/,
    ],
    [
      "a message over the size limit",
      base64(frame(request("demo", "x".repeat(2000)))),
      {},
      Code.ResourceExhausted,
      /larger than configured readMaxBytes 1024/,
    ],
    [
      "bytes that are not the message",
      base64(frame(Uint8Array.of(0xff, 0xff, 0xff))),
      {},
      Code.InvalidArgument,
      /^parse binary: /,
    ],
    ["a missing message", Buffer.alloc(0), {}, Code.Unimplemented, /missing input message/],
  ] as const)("%s: the gRPC error, in text mode", async (_name, body, extra, code, message) => {
    const answer = await post("lanes", via, complete, body, { ...text, ...extra });
    const { messages, error } = textAnswer(answer, CompleteResponseSchema);
    expect(messages).toEqual([]);
    expect(error?.code).toBe(code);
    expect(error?.rawMessage).toMatch(message);
  });

  it("JSON messages (+json): the grpc-web+json answer, base64", async () => {
    const body = base64(
      frame(Buffer.from(JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "Hi" }] }] }))),
    );
    const answer = await post("lanes", via, complete, body, { ...text, "content-type": "application/grpc-web-text+json" });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/grpc-web-text+json");
    const frames = grpcWebFrames(decodeGrpcWebText(answer.body.toString("latin1")));
    expect(JSON.parse(Buffer.from(frames[0]!.data).toString())).toMatchObject({ provider: "demo" });
  });

  it("a gzip'd message", async () => {
    const answer = await post("lanes", via, complete, base64(frame(gzipSync(request("demo")), 1)), {
      ...text,
      "grpc-encoding": "gzip",
    });
    expect(textAnswer(answer, CompleteResponseSchema).messages[0]?.provider).toBe("demo");
  });

  it("the +proto content type and a long deadline too", async () => {
    const answer = await post("lanes", via, complete, base64(frame(request("demo"))), {
      ...text,
      "content-type": "application/grpc-web-text+proto",
      "grpc-timeout": "99999999H",
    });
    expect(textAnswer(answer, CompleteResponseSchema).error).toBeUndefined();
  });
});
