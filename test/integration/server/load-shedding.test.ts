import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { ChatService, CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import type { DemoProvider } from "../../../src/providers/demo/demo-provider.js";
import { reasons } from "../../../src/errors/reasons.js";
import { allProtocolTransports, createGrpcJsClient, toConnectError } from "../../helpers/protocol-clients.js";
import { envelope, grpcHeaders, h2Request, http1Request, type H2Answer } from "../../helpers/raw-http.js";
import { headersFrame, openRawH2, rstStreamFrame } from "../../helpers/raw-h2-frames.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";
import { eventCount, waitUntil } from "../../helpers/wait-until.js";

/*
 * `server.maxConcurrentCalls`: at the cap, a new call is refused at once, in the caller's
 * own protocol, with RESOURCE_EXHAUSTED (reason SERVER_OVERLOADED, RetryInfo) — instead of
 * the process taking on more than it can hold. /healthz still answers.
 */

const maxConcurrentCalls = 2;
let sluice: StartedSluice;
let session: http2.ClientHttp2Session;
let holding: Array<{ stream: http2.ClientHttp2Stream; answer: Promise<H2Answer> }>;

const hello = { model: "demo", messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hi" } }] }] };

beforeAll(async () => {
  sluice = await startSluice(
    {
      providers: { demo: { type: "demo" }, slow: { type: "demo", responseDelayMs: 60_000 } },
      models: {
        demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
        slow: { deployments: [{ provider: "slow", model: "thinking" }] },
      },
    },
    // No queue (server.queue.size 0): refused at once. The queue: call-queue.test.ts.
    { server: { maxConcurrentCalls, queue: { size: 0, maxWaitMs: 250 } } },
  );
  // The cap's worth of calls, thinking for a minute.
  const slow = sluice.sluice.providers.get("slow") as DemoProvider;
  const started = eventCount(slow.events, "started", maxConcurrentCalls);
  session = http2.connect(sluice.url);
  session.on("error", () => {});
  const request = envelope(toBinary(CompleteRequestSchema, create(CompleteRequestSchema, { ...hello, model: "slow" })));
  holding = Array.from({ length: maxConcurrentCalls }, () =>
    h2Request(session, grpcHeaders("sluice.v1.ChatService/Complete"), request),
  );
  await started;
  expect(sluice.server.inFlight).toBe(maxConcurrentCalls);
});
afterAll(async () => {
  session?.destroy();
  await sluice?.close();
});

function expectOverloaded(error: ConnectError): void {
  expect(error.code).toBe(Code.ResourceExhausted);
  expect(error.rawMessage).toContain("server.maxConcurrentCalls");
  expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reasons.serverOverloaded);
  expect(Number(error.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds)).toBe(1);
}

describe("at server.maxConcurrentCalls", () => {
  it.each(["connect-json-h1", "connect-binary-h2", "grpc-web-h1", "grpc-h2"])(
    "%s: unary and server-streaming calls are refused with RESOURCE_EXHAUSTED, reason SERVER_OVERLOADED, RetryInfo",
    async (protocol) => {
      const transport = allProtocolTransports(sluice.url).find((t) => t.protocol === protocol)!;
      try {
        const client = createClient(ChatService, transport.transport);
        expectOverloaded(await client.complete(hello).then(() => expect.fail("served"), ConnectError.from));
        const streamed = (async () => {
          for await (const _ of client.streamComplete(hello)) expect.fail("an event was streamed");
        })();
        expectOverloaded(await streamed.then(() => expect.fail("served"), ConnectError.from));
      } finally {
        transport.close();
      }
    },
  );

  it("a stock gRPC client (grpc-js) reads the refusal as RESOURCE_EXHAUSTED with its details", async () => {
    const client = createGrpcJsClient(sluice.url);
    try {
      const error = await client.unary(ChatService.method.complete, hello).then(() => expect.fail("served"), toConnectError);
      expectOverloaded(error);
    } finally {
      client.close();
    }
  });

  it("Connect unary: HTTP 429 with retry-after, the JSON error body", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(hello),
    });
    expect(answer.status).toBe(429);
    expect(answer.headers["retry-after"]).toBe("1");
    expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "resource_exhausted" });
  });

  it("/healthz still answers, and the refused calls were never counted", async () => {
    const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz" });
    expect(answer.status).toBe(200);
    expect(sluice.server.inFlight).toBe(maxConcurrentCalls);
  });

  it("a reset storm at the cap (HEADERS and RST_STREAM in one write): refused or let go, the server serves on", async () => {
    const attacker = await openRawH2(sluice.port);
    try {
      attacker.write(
        ...Array.from({ length: 50 }, (_, i) => [
          headersFrame(2 * i + 1, "/sluice.v1.ChatService/Complete", { "content-type": "application/grpc", te: "trailers" }),
          rstStreamFrame(2 * i + 1, http2.constants.NGHTTP2_CANCEL),
        ]).flat(),
      );
      const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz" });
      expect(answer.status).toBe(200);
    } finally {
      attacker.destroy();
    }
  });

  it("once calls end, new ones are served again", async () => {
    for (const { stream } of holding) stream.close(http2.constants.NGHTTP2_CANCEL);
    await Promise.all(holding.map(({ answer }) => answer));
    await waitUntil(() => sluice.server.inFlight === 0, "the held calls ended");
    const response = await createClient(ChatService, allProtocolTransports(sluice.url)[0]!.transport).complete(hello);
    expect(response.provider).toBe("demo");
  });
});

describe("without the fast lanes (every call through node's compatibility layer)", () => {
  it("gRPC is refused the same way, as a trailers-only answer", async () => {
    const reference = await startSluice(undefined, {
      server: { maxConcurrentCalls: 1, queue: { size: 0, maxWaitMs: 250 } },
      fastLanes: false,
    });
    const transport = allProtocolTransports(reference.url).find((t) => t.protocol === "grpc-h2")!;
    try {
      // A request whose body is still open holds the one call allowed.
      const held = http2.connect(reference.url);
      held.on("error", () => {});
      const open = h2Request(held, grpcHeaders("sluice.v1.ChatService/Complete"), "open");
      await waitUntil(() => reference.server.inFlight === 1, "the held call counted");
      const client = createClient(ChatService, transport.transport);
      expectOverloaded(await client.complete(hello).then(() => expect.fail("served"), ConnectError.from));
      open.stream.close(http2.constants.NGHTTP2_CANCEL);
      held.destroy();
    } finally {
      transport.close();
      await reference.close();
    }
  });
});
