import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from "../helpers/fake-upstream.js";
import { completion, error500, streamOf } from "../helpers/openai-wire.js";
import { type OtlpReceiver, type ReceivedSpan, spanKind, startOtlpReceiver, statusCode } from "../helpers/otlp-receiver.js";
import { connectJsonTransport, createGrpcJsClient, grpcWebTransport } from "../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

/**
 * Traces end to end: a real gateway exporting to a real OTLP/HTTP receiver, in front of a
 * fake OpenAI-compatible provider that records the traceparent it receives. A caller's
 * traceparent — sent by grpc-js, Connect JSON and gRPC-Web, on the fast lanes and on
 * connect-node — yields a SERVER span that is the caller's span's child, a CLIENT span per
 * upstream attempt under it, and an upstream request whose parent is that attempt. Each
 * test runs its own gateway and closes it before reading the receiver: closing exports
 * what is buffered, so no test waits on the batch timer.
 */

const promptCanary = "PROMPT-CANARY-7f3a";
const answerCanary = "ANSWER-CANARY-91c2";
const request = (model: string) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: `say ${promptCanary}` } }] }],
});

/** Upstream models: "gpt-4o" answers; "broken" always fails with a 500; "flaky" fails its first request only. */
const models = {
  gpt: { deployments: [{ provider: "oai", model: "gpt-4o" }], retry: { maxAttempts: 1 } },
  flaky: { deployments: [{ provider: "oai", model: "flaky" }], retry: { maxAttempts: 2, initialBackoffMs: 1 } },
  fallen: { deployments: [{ provider: "oai", model: "broken" }], retry: { maxAttempts: 1 }, fallbacks: ["gpt"] },
  degraded: {
    deployments: [{ provider: "oai", model: "broken" }],
    retry: { maxAttempts: 1 },
    degraded: { message: "busy, try later" },
  },
};

let upstream: FakeUpstream;
let receiver: OtlpReceiver;
let flakyFailed = new Set<string>();

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  upstream = await startFakeUpstream((req) => {
    const body = req.body as { model?: string; stream?: boolean };
    if (body.model === "broken") return error500;
    // "flaky": the first request of each trace fails.
    const traceId = traceparentOf(req)?.traceId ?? "";
    if (body.model === "flaky" && !flakyFailed.has(traceId)) {
      flakyFailed.add(traceId);
      return error500;
    }
    return body.stream === true ? streamOf(["An", "swer", answerCanary]) : completion(`${answerCanary}`);
  });
});

afterAll(async () => {
  await upstream.close();
  await receiver.close();
  flakyFailed = new Set();
});

interface Caller {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceparent: string;
}

function newCaller(flags = "01"): Caller {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-${flags}` };
}

function traceparentOf(req: RecordedRequest): { traceId: string; parentId: string; flags: string } | undefined {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(req.headers["traceparent"] ?? ""));
  return match === null ? undefined : { traceId: match[1]!, parentId: match[2]!, flags: match[3]! };
}

function upstreamRequestsOf(traceId: string): RecordedRequest[] {
  return upstream.requests.filter((req) => traceparentOf(req)?.traceId === traceId);
}

function spansOf(traceId: string): { server: ReceivedSpan[]; attempts: ReceivedSpan[] } {
  const spans = receiver.spans().filter((span) => span.traceId === traceId);
  return { server: spans.filter((s) => s.kind === spanKind.server), attempts: spans.filter((s) => s.kind === spanKind.client) };
}

async function tracedGateway(
  tracing: Record<string, unknown> = { exporter: "otlp", endpoint: receiver.endpoint },
  fastLanes = true,
): Promise<StartedSluice> {
  return startSluice(
    {
      providers: { oai: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "sk-test-tracing" } },
      models,
      telemetry: { tracing },
      resilience: { breaker: { volumeThreshold: 1_000_000 } },
    },
    { fastLanes },
  );
}

/** The three ways a caller sends its traceparent: gRPC metadata (grpc-js), Connect and gRPC-Web headers. */
const protocols = {
  "grpc-js": async (url: string, caller: Caller) => {
    const client = createGrpcJsClient(url);
    try {
      await client.unary(ChatService.method.complete, request("gpt"), { metadata: { traceparent: caller.traceparent } });
    } finally {
      client.close();
    }
  },
  "connect-json": async (url: string, caller: Caller) => {
    const chat = createClient(ChatService, connectJsonTransport(url).transport);
    await chat.complete(request("gpt"), { headers: { traceparent: caller.traceparent } });
  },
  "grpc-web": async (url: string, caller: Caller) => {
    const chat = createClient(ChatService, grpcWebTransport(url).transport);
    await chat.complete(request("gpt"), { headers: { traceparent: caller.traceparent } });
  },
};

describe.each([
  ["fast lanes", true],
  ["connect-node", false],
])("a caller's traceparent over every protocol (%s)", (_lanes, fastLanes) => {
  it("server span under the caller's, attempt span under it, and the provider sees the attempt as parent", async () => {
    const gateway = await tracedGateway(undefined, fastLanes);
    const callers = new Map(Object.keys(protocols).map((name) => [name, newCaller()]));
    try {
      for (const [name, call] of Object.entries(protocols)) await call(gateway.url, callers.get(name)!);
    } finally {
      await gateway.close();
    }

    for (const [name, caller] of callers) {
      const { server, attempts } = spansOf(caller.traceId);
      expect(server, name).toHaveLength(1);
      expect(attempts, name).toHaveLength(1);
      const [serverSpan, attempt] = [server[0]!, attempts[0]!];
      expect(serverSpan.parentSpanId, name).toBe(caller.spanId);
      expect(serverSpan.name).toBe("sluice.v1.ChatService/Complete");
      expect(serverSpan.attributes).toMatchObject({
        "rpc.system": name === "connect-json" ? "connect_rpc" : "grpc",
        "rpc.service": "sluice.v1.ChatService",
        "rpc.method": "Complete",
        "gen_ai.request.model": "gpt",
        "gen_ai.response.model": "m",
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 2,
        "gen_ai.response.finish_reasons": ["stop"],
        "sluice.attempts": 1,
        "sluice.deployment": "oai/gpt-4o",
      });
      expect(serverSpan.attributes["sluice.request_id"]).toBeTypeOf("string");
      expect(serverSpan.resource["service.name"]).toBe("sluice");
      expect(serverSpan.scope).toBe("sluice");

      expect(attempt.parentSpanId).toBe(serverSpan.spanId);
      expect(attempt.name).toBe("chat gpt-4o");
      expect(attempt.attributes).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.stream": false,
        "gen_ai.response.id": "chatcmpl-r",
        "server.address": "127.0.0.1",
        "server.port": Number(new URL(upstream.origin).port),
      });

      const sent = upstreamRequestsOf(caller.traceId);
      expect(sent).toHaveLength(1);
      expect(traceparentOf(sent[0]!)).toEqual({ traceId: caller.traceId, parentId: attempt.spanId, flags: "01" });
    }
  });
});

describe("attempts, fallbacks and degraded answers", () => {
  it("a retry is a second attempt span, each one the parent the provider saw; the failed one is an error", async () => {
    const gateway = await tracedGateway();
    const caller = newCaller();
    try {
      await createClient(ChatService, connectJsonTransport(gateway.url).transport).complete(request("flaky"), {
        headers: { traceparent: caller.traceparent },
      });
    } finally {
      await gateway.close();
    }
    const { server, attempts } = spansOf(caller.traceId);
    expect(attempts).toHaveLength(2);
    for (const attempt of attempts) expect(attempt.parentSpanId).toBe(server[0]!.spanId);
    expect(upstreamRequestsOf(caller.traceId).map((req) => traceparentOf(req)?.parentId)).toEqual(attempts.map((a) => a.spanId));
    const [failed, ok] = attempts;
    expect(failed!.status.code).toBe(statusCode.error);
    expect(failed!.attributes).toMatchObject({ "error.type": "UPSTREAM_UNAVAILABLE", "sluice.attempt.outcome": "error" });
    expect(ok!.status.code).toBe(statusCode.unset);
    expect(server[0]!.attributes["sluice.attempts"]).toBe(2);
    expect(server[0]!.status.code).toBe(statusCode.unset);
  });

  it("a fallback and a degraded answer are events on the server span, and attributes", async () => {
    const gateway = await tracedGateway();
    const [fallen, degraded] = [newCaller(), newCaller()];
    try {
      const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
      await chat.complete(request("fallen"), { headers: { traceparent: fallen.traceparent } });
      await chat.complete(request("degraded"), { headers: { traceparent: degraded.traceparent } });
    } finally {
      await gateway.close();
    }
    const fell = spansOf(fallen.traceId);
    expect(fell.server[0]!.events.map((e) => e.name)).toContain("sluice.fallback");
    expect(fell.server[0]!.attributes).toMatchObject({ "sluice.fallback_model": "gpt", "gen_ai.request.model": "fallen" });
    expect(fell.attempts.map((a) => [a.attributes["gen_ai.request.model"], a.attributes["sluice.fallback_model"]])).toEqual([
      ["broken", undefined],
      ["gpt-4o", "gpt"],
    ]);

    const busy = spansOf(degraded.traceId);
    expect(busy.server[0]!.events.map((e) => e.name)).toContain("sluice.degraded");
    expect(busy.server[0]!.attributes["sluice.degraded"]).toBe(true);
  });

  it("a stream: its attempt records the time to first chunk and the usage at its end", async () => {
    const gateway = await tracedGateway();
    const caller = newCaller();
    try {
      const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
      for await (const _ of chat.streamComplete(request("gpt"), { headers: { traceparent: caller.traceparent } })) {
        // read to the end
      }
    } finally {
      await gateway.close();
    }
    const { server, attempts } = spansOf(caller.traceId);
    expect(server[0]!.attributes).toMatchObject({ "gen_ai.request.stream": true, "gen_ai.usage.output_tokens": 3 });
    expect(attempts[0]!.attributes).toMatchObject({ "gen_ai.request.stream": true, "gen_ai.usage.output_tokens": 3 });
    expect(attempts[0]!.attributes["gen_ai.response.time_to_first_chunk"]).toBeTypeOf("number");
    expect(server[0]!.attributes["gen_ai.response.time_to_first_chunk"]).toBeTypeOf("number");
  });

  it("no prompt or answer text on any span: unary, stream, a retried failure", async () => {
    const gateway = await tracedGateway();
    const callers = [newCaller(), newCaller(), newCaller()];
    try {
      const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
      await chat.complete(request("gpt"), { headers: { traceparent: callers[0]!.traceparent } });
      for await (const _ of chat.streamComplete(request("gpt"), { headers: { traceparent: callers[1]!.traceparent } })) {
        // read to the end
      }
      await chat.complete(request("flaky"), { headers: { traceparent: callers[2]!.traceparent } });
    } finally {
      await gateway.close();
    }
    const spans = callers.flatMap((caller) => receiver.spans().filter((span) => span.traceId === caller.traceId));
    expect(spans).toHaveLength(7);
    const text = JSON.stringify(spans);
    expect(text).not.toContain(promptCanary);
    expect(text).not.toContain(answerCanary);
  });
});

describe("export formats and export off", () => {
  it("http/json exports the same spans as JSON", async () => {
    const gateway = await tracedGateway({ exporter: "otlp", endpoint: receiver.endpoint, protocol: "http/json" });
    const caller = newCaller();
    const before = receiver.requests.length;
    try {
      await protocols["connect-json"](gateway.url, caller);
    } finally {
      await gateway.close();
    }
    expect(receiver.requests.slice(before).map((r) => r.contentType)).toEqual(["application/json"]);
    const { server, attempts } = spansOf(caller.traceId);
    expect(server[0]!.parentSpanId).toBe(caller.spanId);
    expect(attempts[0]!.parentSpanId).toBe(server[0]!.spanId);
    expect(server[0]!.attributes["gen_ai.request.model"]).toBe("gpt");
  });

  it("with export off (the default) the provider still gets the caller's trace, a parent of Sluice's own and the caller's sampled flag", async () => {
    const gateway = await tracedGateway({});
    const [sampled, unsampled] = [newCaller("01"), newCaller("00")];
    const before = receiver.requests.length;
    try {
      await protocols["grpc-js"](gateway.url, sampled);
      await protocols["grpc-web"](gateway.url, unsampled);
    } finally {
      await gateway.close();
    }
    for (const [caller, flags] of [
      [sampled, "01"],
      [unsampled, "00"],
    ] as const) {
      const sent = upstreamRequestsOf(caller.traceId);
      expect(sent).toHaveLength(1);
      const parent = traceparentOf(sent[0]!)!;
      expect(parent.flags).toBe(flags);
      expect(parent.parentId).not.toBe(caller.spanId);
    }
    expect(receiver.requests.length).toBe(before);
  });

  it("a caller without a traceparent: the provider still gets one, a new trace", async () => {
    const gateway = await tracedGateway({});
    const before = upstream.requests.length;
    try {
      await createClient(ChatService, connectJsonTransport(gateway.url).transport).complete(request("gpt"));
    } finally {
      await gateway.close();
    }
    const [sent] = upstream.requests.slice(before);
    expect(traceparentOf(sent!)).toMatchObject({ flags: "00" });
  });
});
