import { once } from "node:events";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService, type CompleteRequestSchema, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { DemoProvider } from "../../src/providers/demo/demo-provider.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import {
  allProtocolTransports,
  createGrpcJsClient,
  toConnectError,
  type GrpcJsClient,
  type ProtocolTransport,
} from "../helpers/protocol-clients.js";

/**
 * `demo` answers quickly; `slow` sends its start and first word at once, then waits
 * 5 s per word — long enough that a deadline or a cancel always lands mid-stream, and
 * any sign of the provider finishing would mean the abort did not reach it.
 */
const slowWordDelayMs = 5_000;
const configDocument = {
  providers: {
    demo: { type: "demo", wordDelayMs: 1 },
    slow: { type: "demo", wordDelayMs: slowWordDelayMs },
  },
  models: {
    demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    slow: { deployments: [{ provider: "slow", model: "sluice-demo-slow" }] },
  },
};

type Request = MessageInitShape<typeof CompleteRequestSchema>;
const ask = (model: string, text = "hello there"): Request => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: text } }] }],
});

let sluice: StartedSluice;
let slow: DemoProvider;
beforeAll(async () => {
  sluice = await startSluice(configDocument);
  slow = sluice.sluice.providers.get("slow") as DemoProvider;
});
afterAll(async () => {
  await sluice.close();
});

/** Asserts the provider saw the abort, and well before it would have sent its next word. */
async function expectProviderAborted(aborted: Promise<unknown[]>, since: number): Promise<void> {
  const [kind] = await aborted;
  expect(kind).toBe("stream");
  expect(performance.now() - since).toBeLessThan(slowWordDelayMs / 2);
}

/** The error a call failed with; fails the test if the call succeeded. */
async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

function expectStreamShape(events: StreamCompleteResponse[]): string {
  const kinds = events.map((e) => e.event.case);
  expect(kinds[0]).toBe("start");
  expect(kinds.at(-1)).toBe("done");
  expect(kinds.slice(1, -1).every((k) => k === "delta")).toBe(true);
  expect(kinds.length).toBeGreaterThan(3);
  return events.map((e) => (e.event.case === "delta" ? e.event.value.text : "")).join("");
}

describe.each(["connect-json-h1", "connect-binary-h2", "grpc-web-h1", "grpc-h2"] as const)("%s", (protocol) => {
  let client: Client<typeof ChatService>;
  let transport: ProtocolTransport;
  beforeAll(() => {
    transport = allProtocolTransports(sluice.url).find((t) => t.protocol === protocol)!;
    client = createClient(ChatService, transport.transport);
  });
  afterAll(() => transport.close());

  it("Complete: the demo model answers", async () => {
    const response = await client.complete(ask("demo", "hello"));
    expect(response.provider).toBe("demo");
    expect(response.message?.content[0]?.part).toEqual({ case: "text", value: expect.stringContaining('You said: "hello"') });
  });

  it("StreamComplete: start → deltas → done, the same text as Complete", async () => {
    const events: StreamCompleteResponse[] = [];
    for await (const event of client.streamComplete(ask("demo", "stream me"))) events.push(event);
    const streamed = expectStreamShape(events);
    const unary = await client.complete(ask("demo", "stream me"));
    expect(unary.message?.content[0]?.part.value).toBe(streamed);
  });

  it("ListModels works on the same port", async () => {
    const models = createClient(ModelService, transport.transport);
    expect((await models.listModels({})).models.map((m) => m.alias)).toEqual(["demo", "slow"]);
  });

  it("bad input: INVALID_ARGUMENT with a BadRequest naming the fields", async () => {
    const err = await rejection(client.complete({ model: "demo", messages: [] }));
    expect(err.code).toBe(Code.InvalidArgument);
    const [badRequest] = err.findDetails(BadRequestSchema);
    expect(badRequest?.fieldViolations.map((v) => v.field)).toContain("messages");
  });

  it("unknown model: NOT_FOUND naming the model", async () => {
    const err = await rejection(client.complete(ask("no-such-model")));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("no-such-model");
  });

  it("deadline shorter than the stream: DEADLINE_EXCEEDED, and the provider is aborted", async () => {
    const aborted = once(slow.events, "aborted");
    const since = performance.now();
    const events: StreamCompleteResponse[] = [];
    const err = await rejection(
      (async () => {
        for await (const event of client.streamComplete(ask("slow"), { timeoutMs: 300 })) events.push(event);
      })(),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    await expectProviderAborted(aborted, since);
    expect(events.some((e) => e.event.case === "done")).toBe(false);
  });

  it("client cancel mid-stream: the provider sees the abort promptly", async () => {
    const aborted = once(slow.events, "aborted");
    const controller = new AbortController();
    const since = performance.now();
    const err = await rejection(
      (async () => {
        for await (const event of client.streamComplete(ask("slow"), { signal: controller.signal })) {
          if (event.event.case === "delta") controller.abort();
        }
      })(),
    );
    expect(err.code).toBe(Code.Canceled);
    await expectProviderAborted(aborted, since);
  });
});

describe("@grpc/grpc-js client over h2c", () => {
  let grpcJs: GrpcJsClient;
  beforeAll(() => {
    grpcJs = createGrpcJsClient(sluice.url);
  });
  afterAll(() => grpcJs.close());

  function collect(stream: ReturnType<GrpcJsClient["serverStream"]>): Promise<StreamCompleteResponse[]> {
    return new Promise((resolve, reject) => {
      const events: StreamCompleteResponse[] = [];
      stream.on("data", (event: StreamCompleteResponse) => events.push(event));
      stream.on("error", reject);
      stream.on("end", () => resolve(events));
    });
  }

  it("Complete and StreamComplete", async () => {
    const unary = await grpcJs.unary(ChatService.method.complete, ask("demo", "from grpc-js"));
    expect(unary.provider).toBe("demo");
    const events = await collect(grpcJs.serverStream(ChatService.method.streamComplete, ask("demo", "from grpc-js")));
    expect(expectStreamShape(events)).toBe(unary.message?.content[0]?.part.value);
  });

  it("bad input: INVALID_ARGUMENT with BadRequest in grpc-status-details-bin", async () => {
    const err = toConnectError(await grpcJs.unary(ChatService.method.complete, { model: "demo" }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toContain("messages");
  });

  it("unknown model: NOT_FOUND naming the model", async () => {
    const err = toConnectError(await grpcJs.unary(ChatService.method.complete, ask("gpt-nope")).catch((e: unknown) => e));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("gpt-nope");
  });

  it("deadline (grpc-timeout): DEADLINE_EXCEEDED, and the provider is aborted", async () => {
    const aborted = once(slow.events, "aborted");
    const since = performance.now();
    const err = toConnectError(
      await collect(grpcJs.serverStream(ChatService.method.streamComplete, ask("slow"), { deadlineMs: 300 })).catch(
        (e: unknown) => e,
      ),
    );
    expect(err.code).toBe(Code.DeadlineExceeded);
    await expectProviderAborted(aborted, since);
  });

  it("call.cancel() mid-stream: the provider sees the abort promptly", async () => {
    const aborted = once(slow.events, "aborted");
    const since = performance.now();
    const call = grpcJs.serverStream(ChatService.method.streamComplete, ask("slow"));
    const ended = new Promise<unknown>((resolve) => call.on("error", resolve));
    call.on("data", (event: StreamCompleteResponse) => {
      if (event.event.case === "delta") call.cancel();
    });
    expect(toConnectError(await ended).code).toBe(Code.Canceled);
    await expectProviderAborted(aborted, since);
  });
});
