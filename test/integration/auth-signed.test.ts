import { createHash, randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { signatureOf } from "../../src/identity/signed-request.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

const secret = "PLANTED-signing-secret-6f1d0c9b8a7e6d5c4b3a2f1e";
const path = "/sluice.v1.ChatService/Complete";

let gateway: StartedSluice;
let log: CapturedLogger;
beforeAll(async () => {
  log = createCapturedLogger("debug");
  gateway = await startSluice(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
      tenants: { svc: { signingKeys: [{ id: "svc-1", secret }], models: ["demo"] } },
      auth: { signedRequests: { windowSec: 60 } },
    },
    { logger: log.logger },
  );
});
afterAll(() => gateway.close());

/** The signing headers for `body` as sent: what a caller computes. */
function signingHeaders(body: Uint8Array, options: { nonce?: string; ts?: number; method?: string } = {}) {
  const timestamp = String(options.ts ?? Math.floor(Date.now() / 1000));
  const nonce = options.nonce ?? randomBytes(16).toString("hex");
  const bodySha256 = createHash("sha256").update(body).digest("hex");
  return {
    "x-sluice-key-id": "svc-1",
    "x-sluice-timestamp": timestamp,
    "x-sluice-nonce": nonce,
    "x-sluice-signature": signatureOf(secret, options.method ?? "POST", path, timestamp, nonce, bodySha256),
  };
}

const jsonBody = Buffer.from(JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "hi" }] }] }));

async function postJson(headers: Record<string, string>, id: string, body: Uint8Array = jsonBody) {
  const response = await request(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": id, ...headers },
    body,
  });
  return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown> };
}

/** A CompleteRequest for "demo" in a gRPC envelope: the bytes a gRPC or gRPC-Web caller sends, and signs. */
function completeEnvelope(): Buffer {
  const message = toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
    }),
  );
  const envelope = Buffer.alloc(5 + message.byteLength);
  envelope.writeUInt32BE(message.byteLength, 1);
  envelope.set(message, 5);
  return envelope;
}

/** One gRPC call over raw HTTP/2: the envelope's bytes are exactly what was signed. */
async function grpcCall(headers: (body: Uint8Array) => Record<string, string>, id: string): Promise<string | undefined> {
  const envelope = completeEnvelope();
  const session = http2.connect(gateway.url);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        "x-request-id": id,
        ...headers(envelope),
      });
      let status: string | undefined;
      stream.on("response", (h) => {
        status ??= h["grpc-status"] as string | undefined;
      });
      stream.on("trailers", (t) => {
        status = t["grpc-status"] as string | undefined;
      });
      stream.on("data", () => {});
      stream.on("end", () => resolve(status));
      stream.on("error", reject);
      stream.end(envelope);
    });
  } finally {
    session.close();
  }
}

/**
 * One gRPC-Web call over HTTP/1.1: the envelope is signed as sent. The grpc-status comes in
 * the response headers (an error before any message) or in the trailer frame (flag 0x80) that
 * ends the body.
 */
async function grpcWebCall(headers: (body: Uint8Array) => Record<string, string>, id: string): Promise<string | undefined> {
  const envelope = completeEnvelope();
  const response = await request(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-request-id": id, ...headers(envelope) },
    body: envelope,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  const inHeaders = response.headers["grpc-status"];
  if (typeof inHeaders === "string") return inHeaders;
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = body.readUInt32BE(at + 1);
    if ((body[at]! & 0x80) !== 0) {
      return /^grpc-status:\s*(\d+)/m.exec(body.subarray(at + 5, at + 5 + length).toString("latin1"))?.[1];
    }
    at += 5 + length;
  }
  return undefined;
}

const line = (id: string) => log.withMessage("rpc").find((l) => l["requestId"] === id);

describe("signed requests", () => {
  it("Connect JSON: a valid signature is served as the key's tenant; a replay and a stale one are refused", async () => {
    const headers = signingHeaders(jsonBody);
    const ok = await postJson(headers, "signed-ok");
    expect(ok.status).toBe(200);
    const replay = await postJson(headers, "signed-replay");
    expect(replay).toMatchObject({ status: 401, json: { code: "unauthenticated" } });
    const stale = await postJson(signingHeaders(jsonBody, { ts: Math.floor(Date.now() / 1000) - 120 }), "signed-stale");
    expect(stale).toMatchObject({ status: 401, json: { code: "unauthenticated" } });
    // The same signature over other bytes (one space more): the body hash no longer matches.
    const tampered = await postJson(signingHeaders(jsonBody), "signed-tampered", Buffer.concat([jsonBody, Buffer.from(" ")]));
    expect(tampered.status).toBe(401);
    await waitUntil(() => line("signed-tampered") !== undefined, "the access lines");
    expect(line("signed-ok")).toMatchObject({ code: "ok", tenant: "svc", keyId: "svc-1" });
    expect(line("signed-replay")).toMatchObject({ code: "unauthenticated", authRefusal: "signature_replayed" });
    expect(line("signed-stale")).toMatchObject({ code: "unauthenticated", authRefusal: "signature_stale" });
    expect(line("signed-tampered")).toMatchObject({ code: "unauthenticated", authRefusal: "signature_invalid" });
  });

  it("gRPC: a valid signature over the envelope is served; its replay is refused", async () => {
    let sent: Record<string, string> | undefined;
    const once = (body: Uint8Array) => (sent ??= signingHeaders(body));
    expect(await grpcCall(once, "signed-grpc-ok")).toBe("0");
    expect(await grpcCall(once, "signed-grpc-replay")).toBe("16");
    expect(
      await grpcCall((body) => signingHeaders(body, { ts: Math.floor(Date.now() / 1000) + 120 }), "signed-grpc-future"),
    ).toBe("16");
    await waitUntil(() => line("signed-grpc-future") !== undefined, "the access lines");
    expect(line("signed-grpc-ok")).toMatchObject({ code: "ok", tenant: "svc", keyId: "svc-1" });
    expect(line("signed-grpc-replay")).toMatchObject({ authRefusal: "signature_replayed" });
    expect(line("signed-grpc-future")).toMatchObject({ authRefusal: "signature_stale" });
  });

  it("gRPC-Web: a valid signature over the envelope is served; its replay and a stale one are refused", async () => {
    let sent: Record<string, string> | undefined;
    const once = (body: Uint8Array) => (sent ??= signingHeaders(body));
    expect(await grpcWebCall(once, "signed-web-ok")).toBe("0");
    expect(await grpcWebCall(once, "signed-web-replay")).toBe("16");
    expect(
      await grpcWebCall((body) => signingHeaders(body, { ts: Math.floor(Date.now() / 1000) - 120 }), "signed-web-stale"),
    ).toBe("16");
    await waitUntil(() => line("signed-web-stale") !== undefined, "the access lines");
    expect(line("signed-web-ok")).toMatchObject({ code: "ok", tenant: "svc", keyId: "svc-1", protocol: "grpc-web" });
    expect(line("signed-web-replay")).toMatchObject({ authRefusal: "signature_replayed" });
    expect(line("signed-web-stale")).toMatchObject({ authRefusal: "signature_stale" });
  });

  it("a call connect-node serves (a URL with a query) cannot be verified: refused", async () => {
    const response = await request(`${gateway.url}${path}?via=connect-node`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "signed-node", ...signingHeaders(jsonBody) },
      body: jsonBody,
    });
    expect(response.statusCode).toBe(401);
    await response.body.dump();
    await waitUntil(() => line("signed-node") !== undefined, "the access line");
    expect(line("signed-node")).toMatchObject({ code: "unauthenticated", authRefusal: "signature_unsupported" });
  });

  it("never logs the secret", () => {
    expect(JSON.stringify(log.lines)).not.toContain(secret);
  });
});
