import * as http from "node:http";
import * as net from "node:net";
import { once } from "node:events";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { ChatService, type CompleteRequestSchema, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { DemoProvider } from "../../src/providers/demo/demo-provider.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { connectJsonTransport, createGrpcJsClient, toConnectError, type GrpcJsClient } from "../helpers/protocol-clients.js";

const request: MessageInitShape<typeof CompleteRequestSchema> = {
  model: "demo",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "drain me" } }] }],
};

function demoConfig(provider: { wordDelayMs: number; responseDelayMs?: number }): Record<string, unknown> {
  return {
    providers: { demo: { type: "demo", ...provider } },
    models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
  };
}

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done();
});

async function start(
  provider: { wordDelayMs: number; responseDelayMs?: number },
  drainTimeoutMs: number,
): Promise<{ sluice: StartedSluice; demo: DemoProvider; grpcJs: GrpcJsClient }> {
  const sluice = await startSluice(demoConfig(provider), { server: { drainTimeoutMs } });
  cleanup.push(() => sluice.close());
  const grpcJs = createGrpcJsClient(sluice.url);
  cleanup.push(() => grpcJs.close());
  return { sluice, demo: sluice.sluice.providers.get("demo") as DemoProvider, grpcJs };
}

/** All events of a grpc-js server stream, or its error. */
function collect(stream: NodeJS.EventEmitter): Promise<{ events: StreamCompleteResponse[]; error?: ConnectError }> {
  return new Promise((resolve) => {
    const events: StreamCompleteResponse[] = [];
    stream.on("data", (event: StreamCompleteResponse) => events.push(event));
    stream.on("error", (err: unknown) => resolve({ events, error: toConnectError(err) }));
    stream.on("end", () => resolve({ events }));
  });
}

function connectRefused(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

/** A curl-style Connect JSON call on a keep-alive HTTP/1.1 connection. */
function keptAliveJsonCall(port: number): Promise<{ status: number; socketClosed: Promise<unknown> }> {
  const agent = new http.Agent({ keepAlive: true });
  cleanup.push(() => agent.destroy());
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/sluice.v1.ChatService/Complete",
        headers: { "content-type": "application/json" },
        agent,
      },
      (res) => {
        const socketClosed = once(res.socket, "close");
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode!, socketClosed }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "h1" }] }] }));
  });
}

describe("graceful shutdown", () => {
  it("in-flight unary and stream calls that fit in drainTimeoutMs finish; health turns NOT_SERVING; new connections are refused", async () => {
    const drainTimeoutMs = 10_000;
    const { sluice, demo, grpcJs } = await start({ wordDelayMs: 10, responseDelayMs: 200 }, drainTimeoutMs);

    const watch = grpcJs.serverStream(Health.method.watch, { service: "" });
    const watched: ServingStatus[] = [];
    const watchEnded = new Promise<ConnectError>((resolve) => watch.on("error", (e) => resolve(toConnectError(e))));
    const nextStatus = (): Promise<void> =>
      new Promise((resolve) =>
        watch.once("data", (m: HealthCheckResponse) => {
          watched.push(m.status);
          resolve();
        }),
      );
    await nextStatus();

    let started = 0;
    const allStarted = new Promise<void>((resolve) =>
      demo.events.on("started", () => {
        if (++started === 3) resolve();
      }),
    );
    let streamDone = false;
    const stream = collect(grpcJs.serverStream(ChatService.method.streamComplete, request)).finally(() => (streamDone = true));
    const unary = grpcJs.unary(ChatService.method.complete, request);
    const h1 = keptAliveJsonCall(sluice.port);
    await allStarted;

    const notServing = nextStatus();
    const since = performance.now();
    const shutdown = sluice.server.shutdown("test");
    await notServing;
    expect(watched).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(await connectRefused(sluice.port)).toBe("ECONNREFUSED");

    // The HTTP/1.1 keep-alive connection is closed as soon as its response is done, not
    // left open for reuse until the end of the drain (the stream, ~40 words × 10 ms, is still going).
    const { status, socketClosed } = await h1;
    expect(status).toBe(200);
    await socketClosed;
    expect(streamDone).toBe(false);

    expect((await unary).provider).toBe("demo");
    const { events, error } = await stream;
    expect(error).toBeUndefined();
    expect(events.at(-1)?.event.case).toBe("done");

    await shutdown;
    // The Watch stream did not hold the drain for drainTimeoutMs; shutdown ended it.
    expect(performance.now() - since).toBeLessThan(drainTimeoutMs / 2);
    expect((await watchEnded).code).toBe(Code.Unavailable);
    expect(sluice.server.inFlight).toBe(0);
  });

  it('grpc-js: a stream longer than drainTimeoutMs ends UNAVAILABLE "server is shutting down", and the provider is aborted', async () => {
    const drainTimeoutMs = 300;
    const { sluice, demo, grpcJs } = await start({ wordDelayMs: 5_000 }, drainTimeoutMs);
    const call = grpcJs.serverStream(ChatService.method.streamComplete, request);
    const firstDelta = new Promise<void>((resolve) =>
      call.on("data", (e: StreamCompleteResponse) => e.event.case === "delta" && resolve()),
    );
    const result = collect(call);
    await firstDelta;

    const aborted = once(demo.events, "aborted");
    const since = performance.now();
    const shutdown = sluice.server.shutdown("test");
    const { events, error } = await result;
    const elapsed = performance.now() - since;
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toBe("server is shutting down");
    expect(events.some((e) => e.event.case === "done")).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(drainTimeoutMs - 20);
    expect(elapsed).toBeLessThan(5_000);
    const [, reason] = await aborted;
    expect(ConnectError.from(reason).code).toBe(Code.Unavailable);
    await shutdown;
  });

  it("Connect JSON over HTTP/1.1: the same stream ends with unavailable in its end-of-stream message", async () => {
    const { sluice } = await start({ wordDelayMs: 5_000 }, 200);
    const transport = connectJsonTransport(sluice.url);
    const client = createClient(ChatService, transport.transport);
    let sawDelta!: () => void;
    const delta = new Promise<void>((resolve) => (sawDelta = resolve));
    const consumed = (async () => {
      for await (const event of client.streamComplete(request)) if (event.event.case === "delta") sawDelta();
    })().then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    await delta;
    const shutdown = sluice.server.shutdown("test");
    const error = await consumed;
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toBe("server is shutting down");
    await shutdown;
  });
});
