import { Code, ConnectError } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import type { TelemetryConfig } from "../config/schema.js";
import { failures } from "../errors/failure-table.js";
import { gatewayError, UpstreamError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { CallRecord } from "./call-record.js";
import type { AttemptTarget, CallTelemetry } from "./call-telemetry.js";
import { createCallTelemetry } from "./call-telemetry-hub.js";
import { createTracing, type Tracing } from "./tracing.js";

const on: TelemetryConfig["tracing"] = { exporter: "otlp", protocol: "http/protobuf", sampleRatio: 1 };
const off: TelemetryConfig["tracing"] = { ...on, exporter: "none" };

const callerTraceId = "0af7651916cd43dd8448eb211c80319c";
const callerSpanId = "b7ad6b7169203331";
const traceparentRe = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

const target: AttemptTarget = Object.freeze({
  provider: "oai",
  providerType: "openai",
  deployment: "oai/gpt-4o",
  model: "gpt-4o",
  serverAddress: "api.openai.com",
  serverPort: 443,
  price: undefined,
});

function callerHeaders(flags = "01", extra: Record<string, string> = {}): Headers {
  return new Headers({ traceparent: `00-${callerTraceId}-${callerSpanId}-${flags}`, ...extra });
}

function newRecord(protocol: "grpc" | "connect" = "grpc", stream = false): CallRecord {
  return new CallRecord("sluice.v1.ChatService/Complete", protocol, stream, performance.now());
}

function parse(traceparent: string | undefined): { traceId: string; parentId: string; flags: string } {
  const match = traceparentRe.exec(traceparent ?? "");
  if (match === null) throw new Error(`not a traceparent: ${traceparent}`);
  return { traceId: match[1]!, parentId: match[2]!, flags: match[3]! };
}

let tracing: Tracing | undefined;
afterEach(async () => {
  await tracing?.shutdown();
  tracing = undefined;
});

/** A gateway's tracing with spans kept in memory, and the hub the request path sees. */
function recording(env: Record<string, string> = {}): { telemetry: CallTelemetry; spans: () => Promise<ReadableSpan[]> } {
  const exporter = new InMemorySpanExporter();
  const created = createTracing({ config: on, env, exporter });
  tracing = created;
  return {
    telemetry: createCallTelemetry({ tracing: created }),
    async spans() {
      await created.forceFlush();
      return exporter.getFinishedSpans();
    },
  };
}

describe("export off (the default): trace context propagated, nothing recorded", () => {
  it("an attempt's traceparent continues the caller's trace, with its own parent id and the caller's sampled flag", () => {
    tracing = createTracing({ config: off, env: {} });
    expect(tracing.exporting).toBe(false);
    const telemetry = createCallTelemetry({ tracing });
    for (const flags of ["01", "00"]) {
      const record = newRecord();
      telemetry.begin(record, callerHeaders(flags));
      const first = parse(telemetry.attempt(record, target, { alias: "gpt", hedged: false }).traceparent);
      const retry = parse(telemetry.attempt(record, target, { alias: "gpt", hedged: false }).traceparent);
      expect(first).toMatchObject({ traceId: callerTraceId, flags });
      expect(first.parentId).not.toBe(callerSpanId);
      expect(retry.parentId).not.toBe(first.parentId);
      // What the access log prints.
      expect(record.traceId).toBe(callerTraceId);
      expect(record.spanId).toMatch(/^[0-9a-f]{16}$/);
      telemetry.end(record, undefined);
    }
  });

  it("without a (valid) caller traceparent a new trace starts, unsampled", () => {
    tracing = createTracing({ config: off, env: {} });
    const telemetry = createCallTelemetry({ tracing });
    for (const header of [new Headers(), new Headers({ traceparent: "00-zz-yy-01" })]) {
      const record = newRecord();
      telemetry.begin(record, header);
      const sent = parse(telemetry.attempt(record, target, { alias: "gpt", hedged: false }).traceparent);
      expect(sent.traceId).toBe(record.traceId);
      expect(sent.traceId).not.toBe(callerTraceId);
      expect(sent.flags).toBe("00");
    }
  });
});

describe("export on: a server span per call, a client span per attempt", () => {
  it("the server span is the caller's child; each attempt (a retry too) is the server span's child and is what the provider sees as parent", async () => {
    const { telemetry, spans } = recording();
    const record = newRecord();
    record.requestId = "req-1";
    telemetry.begin(record, callerHeaders("01", { tracestate: "vendor=opaque" }));
    record.alias = "gpt";
    const failed = telemetry.attempt(record, target, { alias: "gpt", hedged: false });
    const failure = new UpstreamError({ failure: failures.serverError, provider: "oai", message: "boom", status: 500 });
    failed.end("error", failure);
    const ok = telemetry.attempt(record, target, { alias: "gpt", hedged: false });
    ok.answered({
      responseModel: "gpt-4o-2024-08-06",
      responseId: "chatcmpl-1",
      finishReason: "stop",
      inputTokens: 12,
      outputTokens: 7,
    });
    ok.end("ok");
    Object.assign(record, {
      provider: "oai",
      providerType: "openai",
      deployment: "oai/gpt-4o",
      responseModel: "gpt-4o-2024-08-06",
      finishReason: "stop",
      inputTokens: 12,
      outputTokens: 7,
      attempts: 2,
    });
    telemetry.end(record, undefined);

    const all = await spans();
    const server = all.find((s) => s.kind === SpanKind.SERVER)!;
    const attempts = all.filter((s) => s.kind === SpanKind.CLIENT);
    expect(all).toHaveLength(3);
    expect(server.name).toBe("sluice.v1.ChatService/Complete");
    expect(server.spanContext().traceId).toBe(callerTraceId);
    expect(server.parentSpanContext?.spanId).toBe(callerSpanId);
    expect(server.spanContext().traceState?.get("vendor")).toBe("opaque");
    expect({ traceId: record.traceId, spanId: record.spanId }).toEqual({
      traceId: callerTraceId,
      spanId: server.spanContext().spanId,
    });
    expect(server.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "sluice.v1.ChatService",
      "rpc.method": "Complete",
      "rpc.grpc.status_code": 0,
      "gen_ai.request.model": "gpt",
      "gen_ai.response.model": "gpt-4o-2024-08-06",
      "gen_ai.response.finish_reasons": ["stop"],
      "gen_ai.usage.input_tokens": 12,
      "gen_ai.usage.output_tokens": 7,
      "sluice.attempts": 2,
      "sluice.deployment": "oai/gpt-4o",
      "sluice.request_id": "req-1",
    });
    // The attempts are the GenAI operations: usage aggregated per operation counts each call once.
    expect(server.attributes["gen_ai.operation.name"]).toBeUndefined();
    expect(server.status.code).toBe(SpanStatusCode.UNSET);

    for (const [i, span] of attempts.entries()) {
      expect(span.name).toBe("chat gpt-4o");
      expect(span.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
      expect(parse([failed, ok][i]!.traceparent)).toEqual({
        traceId: callerTraceId,
        parentId: span.spanContext().spanId,
        flags: "01",
      });
      expect(span.attributes).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.stream": false,
        "server.address": "api.openai.com",
        "server.port": 443,
      });
    }
    expect(attempts[0]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(attempts[0]!.attributes).toMatchObject({ "error.type": "UPSTREAM_UNAVAILABLE", "sluice.attempt.outcome": "error" });
    expect(attempts[1]!.status.code).toBe(SpanStatusCode.UNSET);
    expect(attempts[1]!.attributes).toMatchObject({
      "gen_ai.response.id": "chatcmpl-1",
      "gen_ai.usage.output_tokens": 7,
    });
    expect(attempts[1]!.attributes["error.type"]).toBeUndefined();
    expect(attempts[1]!.attributes["sluice.attempt.outcome"]).toBeUndefined();
  });

  it("skips, fallbacks and degraded answers are events on the server span; hedges and fallbacks are marked on their attempts", async () => {
    const { telemetry, spans } = recording();
    const record = newRecord("connect", true);
    telemetry.begin(record, new Headers());
    record.alias = "gpt";
    telemetry.event(record, "breaker_open_skip", "oai/gpt-4o");
    telemetry.event(record, "fallback", "backup/small");
    const hedge = telemetry.attempt(record, target, { alias: "backup", hedged: true });
    hedge.firstChunk();
    hedge.end("superseded");
    telemetry.event(record, "degraded");
    record.degraded = true;
    record.fallback = "backup";
    telemetry.end(record, undefined);

    const all = await spans();
    const server = all.find((s) => s.kind === SpanKind.SERVER)!;
    const attempt = all.find((s) => s.kind === SpanKind.CLIENT)!;
    expect(server.events.map((e) => [e.name, e.attributes])).toEqual([
      ["sluice.breaker_open_skip", { "sluice.deployment": "oai/gpt-4o" }],
      ["sluice.fallback", { "sluice.deployment": "backup/small" }],
      ["sluice.degraded", {}],
    ]);
    expect(server.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "gen_ai.request.stream": true,
      "sluice.degraded": true,
      "sluice.fallback_model": "backup",
    });
    expect(server.attributes["rpc.connect_rpc.error_code"]).toBeUndefined();
    expect(attempt.attributes).toMatchObject({
      "sluice.hedged": true,
      "sluice.fallback_model": "backup",
      "sluice.attempt.outcome": "superseded",
      "gen_ai.request.stream": true,
    });
    expect(attempt.attributes["gen_ai.response.time_to_first_chunk"]).toBeTypeOf("number");
    // A hedge race's loser did not fail.
    expect(attempt.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("a failed call: error.type always; ERROR status only when the failure is the server's (or a provider's), not the caller's", async () => {
    const { telemetry, spans } = recording();
    const cases = [
      [gatewayError(Code.NotFound, reasons.modelNotFound, "no model"), "MODEL_NOT_FOUND", SpanStatusCode.UNSET],
      [new ConnectError("late", Code.DeadlineExceeded), "deadline_exceeded", SpanStatusCode.ERROR],
      [
        new UpstreamError({ failure: failures.rateLimited, provider: "oai", message: "slow down", status: 429 }),
        "UPSTREAM_RATE_LIMITED",
        SpanStatusCode.ERROR,
      ],
    ] as const;
    for (const [error] of cases) {
      const record = newRecord("connect");
      telemetry.begin(record, new Headers());
      telemetry.end(record, error);
    }
    const servers = await spans();
    expect(servers.map((s) => [s.attributes["error.type"], s.status.code])).toEqual(
      cases.map(([, type, status]) => [type, status]),
    );
    expect(servers[0]!.attributes["rpc.connect_rpc.error_code"]).toBe("not_found");
    // No message on the span: it may quote a provider's words, which may quote the prompt.
    for (const span of servers) expect(span.status.message).toBeUndefined();
  });

  it("a caller that did not sample: nothing recorded (parent-based), the ids still propagate, unsampled", async () => {
    const { telemetry, spans } = recording();
    const record = newRecord();
    telemetry.begin(record, callerHeaders("00"));
    const attempt = telemetry.attempt(record, target, { alias: "gpt", hedged: false });
    attempt.end("ok");
    telemetry.end(record, undefined);
    expect(await spans()).toEqual([]);
    expect(parse(attempt.traceparent)).toMatchObject({ traceId: callerTraceId, flags: "00" });
    expect(record.spanId).toMatch(/^[0-9a-f]{16}$/);
  });

  it("OTEL_SEMCONV_STABILITY_OPT_IN=rpc: the stable RPC attributes only; rpc/dup: both sets", async () => {
    const stable = recording({ OTEL_SEMCONV_STABILITY_OPT_IN: "rpc" });
    const record = newRecord("grpc");
    stable.telemetry.begin(record, new Headers());
    stable.telemetry.end(record, new ConnectError("gone", Code.Canceled));
    const [span] = await stable.spans();
    expect(span!.attributes).toEqual({
      "rpc.system.name": "grpc",
      "rpc.method": "sluice.v1.ChatService/Complete",
      "rpc.status_code": "CANCELLED",
      "error.type": "canceled",
    });
    await tracing?.shutdown();

    const dup = recording({ OTEL_SEMCONV_STABILITY_OPT_IN: "rpc/dup" });
    const second = newRecord("connect");
    dup.telemetry.begin(second, new Headers());
    dup.telemetry.end(second, undefined);
    const [both] = await dup.spans();
    expect(both!.attributes).toEqual({
      "rpc.system": "connect_rpc",
      "rpc.service": "sluice.v1.ChatService",
      "rpc.system.name": "connectrpc",
      "rpc.method": "sluice.v1.ChatService/Complete",
      "rpc.status_code": "ok",
    });
  });
});

describe("shutdown", () => {
  it("does not wait past its bound for a collector that does not answer", async () => {
    const warned: string[] = [];
    const never: SpanExporter = { export() {}, shutdown: () => new Promise(() => {}) };
    tracing = createTracing({
      config: on,
      env: {},
      exporter: never,
      shutdownTimeoutMs: 20,
      logger: { warn: (_fields: unknown, message?: string) => warned.push(message ?? ""), info: () => {} },
    });
    const telemetry = createCallTelemetry({ tracing });
    const record = newRecord();
    telemetry.begin(record, new Headers());
    telemetry.end(record, undefined);
    await tracing.shutdown();
    expect(warned).toEqual([expect.stringContaining("spans not exported at shutdown")]);
  });
});

describe("configuration problems", () => {
  it("are logged once each at startup, and tracing still starts with the defaults", () => {
    const warned: unknown[] = [];
    const logger = { warn: (fields: unknown) => warned.push(fields), info: () => {} };
    tracing = createTracing({ config: on, env: { OTEL_TRACES_SAMPLER: "xray" }, logger, exporter: new InMemorySpanExporter() });
    expect(tracing.exporting).toBe(true);
    expect(warned).toEqual([{ problem: expect.stringContaining("OTEL_TRACES_SAMPLER") }]);
  });
});
