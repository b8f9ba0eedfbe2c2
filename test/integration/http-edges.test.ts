import * as http from "node:http";
import * as http2 from "node:http2";
import { once } from "node:events";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { createGrpcJsClient, toConnectError, type GrpcJsClient } from "../helpers/protocol-clients.js";
import { createReadSpy, startRechunkingProxy, type RechunkingProxy } from "../helpers/rechunking-proxy.js";

const maxRequestBytes = 2_048;
const spy = createReadSpy();
let sluice: StartedSluice;
let grpcJs: GrpcJsClient;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  // The embedded default, with the demo model's words streamed without delay.
  sluice = await startSluice(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    },
    { server: { maxRequestBytes }, onConnection: spy.onConnection },
  );
  grpcJs = createGrpcJsClient(sluice.url);
});
afterAll(async () => {
  grpcJs.close();
  for (const done of cleanup.splice(0).reverse()) await done();
  await sluice.close();
});

/** The README's curl: `curl -s $URL/sluice.v1.ChatService/Complete -H 'content-type: application/json' -d '…'`. */
const curlBody = JSON.stringify({
  model: "demo",
  messages: [{ role: "ROLE_USER", content: [{ text: "Hello from curl" }] }],
});

interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One HTTP/1.1 request on a fresh connection, as curl sends it. */
function post(port: number, path: string, contentType: string, body: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        agent: false,
        headers: { "content-type": contentType, accept: "*/*", "user-agent": "curl/8.5.0" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Connect streaming envelope: flags byte, big-endian length, payload. */
function envelope(flags: number, payload: string): Buffer {
  const data = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

function parseEnvelopes(body: Buffer): Array<{ flags: number; json: unknown }> {
  const out: Array<{ flags: number; json: unknown }> = [];
  for (let at = 0; at < body.length; ) {
    const flags = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    out.push({ flags, json: JSON.parse(body.subarray(at + 5, at + 5 + length).toString()) });
    at += 5 + length;
  }
  return out;
}

async function expectStillServing(): Promise<void> {
  const { status, body } = await post(sluice.port, "/sluice.v1.ChatService/Complete", "application/json", curlBody);
  expect(status).toBe(200);
  expect(JSON.parse(body.toString()).provider).toBe("demo");
}

describe("Connect JSON over plain HTTP/1.1 (curl)", () => {
  it("the README curl: POST JSON to /sluice.v1.ChatService/Complete", async () => {
    const { status, headers, body } = await post(sluice.port, "/sluice.v1.ChatService/Complete", "application/json", curlBody);
    expect(status).toBe(200);
    expect(headers["content-type"]).toBe("application/json");
    const json = JSON.parse(body.toString());
    expect(json.provider).toBe("demo");
    expect(json.message.role).toBe("ROLE_ASSISTANT");
    expect(json.message.content[0].text).toContain('You said: "Hello from curl"');
    expect(json.finishReason).toBe("FINISH_REASON_STOP");
  });

  it("streaming with application/connect+json: enveloped events start → deltas → done, then end-of-stream", async () => {
    const { status, headers, body } = await post(
      sluice.port,
      "/sluice.v1.ChatService/StreamComplete",
      "application/connect+json",
      envelope(0, curlBody),
    );
    expect(status).toBe(200);
    expect(headers["content-type"]).toBe("application/connect+json");
    const frames = parseEnvelopes(body);
    const end = frames.pop()!;
    expect(end.flags & 0b10).toBe(0b10);
    // The end-of-stream message carries the route trailers (how the call was served).
    expect(end.json).toEqual({
      metadata: { "sluice-provider": ["demo"], "sluice-upstream-model": [expect.any(String)], "sluice-attempts": ["1"] },
    });
    const events = frames.map((f) => Object.keys(f.json as object)[0]);
    expect(events[0]).toBe("start");
    expect(events.at(-1)).toBe("done");
    expect(events.slice(1, -1).every((e) => e === "delta")).toBe(true);
  });

  it("malformed JSON: 400 invalid_argument, and the server keeps serving", async () => {
    const { status, body } = await post(sluice.port, "/sluice.v1.ChatService/Complete", "application/json", '{"model": "demo",');
    expect(status).toBe(400);
    expect(JSON.parse(body.toString()).code).toBe("invalid_argument");
    await expectStillServing();
  });

  it("a body over server.maxRequestBytes: resource_exhausted, and the server keeps serving", async () => {
    const big = JSON.stringify({
      model: "demo",
      messages: [{ role: "ROLE_USER", content: [{ text: "x".repeat(maxRequestBytes * 2) }] }],
    });
    const { status, body } = await post(sluice.port, "/sluice.v1.ChatService/Complete", "application/json", big);
    expect(status).toBe(429);
    expect(JSON.parse(body.toString()).code).toBe("resource_exhausted");
    await expectStillServing();
  });

  it("a chunked body (no content-length) growing past server.maxRequestBytes: resource_exhausted, not a reset", async () => {
    const response = new Promise<RawResponse>((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: sluice.port,
          method: "POST",
          path: "/sluice.v1.ChatService/Complete",
          agent: false,
          headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      // Valid JSON split over several chunks, together twice the limit.
      const text = "z".repeat(maxRequestBytes);
      req.write('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"');
      req.write(text);
      req.write(text);
      req.end('"}]}]}');
    });
    const { status, body } = await response;
    expect(status).toBe(429);
    const error = JSON.parse(body.toString());
    expect(error.code).toBe("resource_exhausted");
    expect(error.message).toContain(`readMaxBytes ${maxRequestBytes}`);
    await expectStillServing();
  });

  it("an over-size gRPC message: RESOURCE_EXHAUSTED for grpc-js, and the server keeps serving", async () => {
    const err = toConnectError(
      await grpcJs
        .unary(ChatService.method.complete, {
          model: "demo",
          messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "y".repeat(maxRequestBytes * 2) } }] }],
        })
        .catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    const ok = await grpcJs.unary(ChatService.method.complete, {
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "small" } }] }],
    });
    expect(ok.provider).toBe("demo");
  });

  it("unknown paths: 404 over HTTP/1.1 and HTTP/2", async () => {
    expect((await post(sluice.port, "/nope", "application/json", "{}")).status).toBe(404);
    const session = http2.connect(sluice.url);
    cleanup.push(() => session.destroy());
    const stream = session.request({ ":method": "POST", ":path": "/sluice.v1.ChatService/Nope" });
    stream.end();
    const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
    expect(headers[":status"]).toBe(404);
    stream.resume();
    session.close();
  });
});

describe("one port: split first reads", () => {
  async function proxy(pieces: number[]): Promise<RechunkingProxy> {
    const started = await startRechunkingProxy({ target: { host: sluice.host, port: sluice.port }, pieces, spy });
    cleanup.push(() => started.close());
    return started;
  }

  it.each([
    ["one byte per read", Array<number>(24).fill(1)],
    ["two pieces", [7, 17]],
  ])("a grpc-js call whose HTTP/2 preface arrives %s", async (_name, pieces) => {
    const { port } = await proxy(pieces);
    const client = createGrpcJsClient(`http://127.0.0.1:${port}`);
    cleanup.push(() => client.close());
    const response = await client.unary(ChatService.method.complete, {
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "split" } }] }],
    });
    expect(response.provider).toBe("demo");
  });

  it("an HTTP/1.1 POST whose first read is the lone byte P", async () => {
    const { port } = await proxy([1]);
    const { status, body } = await post(port, "/sluice.v1.ChatService/Complete", "application/json", curlBody);
    expect(status).toBe(200);
    expect(JSON.parse(body.toString()).provider).toBe("demo");
  });
});

describe("grpc.health.v1.Health via grpc-js", () => {
  it('Check: SERVING for "" and each service; NOT_FOUND for others; List', async () => {
    expect((await grpcJs.unary(Health.method.check, { service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await grpcJs.unary(Health.method.check, { service: "sluice.v1.ChatService" })).status).toBe(ServingStatus.SERVING);
    expect((await grpcJs.unary(Health.method.check, { service: "sluice.v1.ModelService" })).status).toBe(ServingStatus.SERVING);
    const err = toConnectError(await grpcJs.unary(Health.method.check, { service: "x.Y" }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.NotFound);
    const { statuses } = await grpcJs.unary(Health.method.list, {});
    expect(Object.keys(statuses).sort()).toEqual([
      "",
      "sluice.v1.AdminService",
      "sluice.v1.ChatService",
      "sluice.v1.ModelService",
    ]);
  });

  it("Watch: the current status, then changes, until the caller cancels", async () => {
    const call = grpcJs.serverStream(Health.method.watch, { service: "sluice.v1.ChatService" });
    const seen: ServingStatus[] = [];
    const next = (): Promise<ServingStatus> =>
      new Promise((resolve) => call.once("data", (m: HealthCheckResponse) => resolve(m.status)));
    seen.push(await next());
    const changed = next();
    sluice.server.health.setStatus("sluice.v1.ChatService", ServingStatus.NOT_SERVING);
    seen.push(await changed);
    const back = next();
    sluice.server.health.setStatus("sluice.v1.ChatService", ServingStatus.SERVING);
    seen.push(await back);
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
    const ended = new Promise((resolve) => call.on("error", resolve));
    call.cancel();
    expect(toConnectError(await ended).code).toBe(Code.Canceled);
  });
});

describe("server reflection via grpc-js (what grpcurl does)", () => {
  it.each([
    ["v1", reflectionV1.ServerReflection.method.serverReflectionInfo],
    ["v1alpha", reflectionV1alpha.ServerReflection.method.serverReflectionInfo],
  ] as const)("%s: list_services, file_containing_symbol, NOT_FOUND", async (_version, method) => {
    const typed = method as typeof reflectionV1.ServerReflection.method.serverReflectionInfo;
    const call = grpcJs.bidiStream(typed);
    const responses: reflectionV1.ServerReflectionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (r: reflectionV1.ServerReflectionResponse) => responses.push(r));
      call.on("end", resolve);
      call.on("error", reject);
    });
    const write = (messageRequest: reflectionV1.ServerReflectionRequest["messageRequest"]): void => {
      // v1 and v1alpha requests have the same shape; each is built with its own schema.
      call.write(create(typed.input, { host: "", messageRequest }));
    };
    write({ case: "listServices", value: "" });
    write({ case: "fileContainingSymbol", value: "sluice.v1.ChatService.StreamComplete" });
    write({ case: "fileContainingSymbol", value: "sluice.v1.Nope" });
    call.end();
    await done;

    const [list, file, missing] = responses;
    expect(list!.messageResponse.case).toBe("listServicesResponse");
    const services =
      list!.messageResponse.case === "listServicesResponse" ? list!.messageResponse.value.service.map((s) => s.name) : [];
    expect(services).toEqual(
      expect.arrayContaining([
        "sluice.v1.ChatService",
        "sluice.v1.ModelService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
    expect(file!.messageResponse.case).toBe("fileDescriptorResponse");
    const names =
      file!.messageResponse.case === "fileDescriptorResponse"
        ? file!.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)
        : [];
    expect(names[0]).toBe("sluice/v1/chat_service.proto");
    expect(names).toContain("sluice/v1/chat.proto");
    expect(missing!.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
  });
});
