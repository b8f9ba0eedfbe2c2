// What recording the metrics of one call costs with each metrics library, on the hot path.
//
// Usage (from the repo root): npx tsx bench/micro/metrics-libraries.ts [--calls 200000] [--rounds 7]
//
// "One call" is what Sluice records per streamed chat call (docs/metrics.md): in-flight
// up and down, the RPC counter, request duration, gateway-added time, time to first
// token, time per output token, input and output token usage, the upstream attempt
// (counter and duration), the cost and the answering model: 13 recordings over five label
// sets. Label tuples rotate over 3 aliases × 2 deployments × 2 protocols, as real traffic
// does. Each variant runs in a tight loop after a warm-up; reported: CPU ns per call,
// median of the rounds (min–max), and the time of one scrape afterwards.
//
// Variants:
//   prom-client, labels per call   — the usual `histogram.observe({ alias, ... }, v)`.
//   prom-client, cached children   — `labels()` resolved once per label tuple, found per call by Map lookups.
//   OTel SDK + Prometheus exporter — `record(v, attributes)` with the attribute objects cached per tuple.
//   Sluice (src/telemetry/metrics) — the production backend fed a CallRecord, as the call telemetry hub does.
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { AggregationTemporality, AggregationType, InstrumentType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { CallRecord } from "../../src/telemetry/call-record.js";
import type { AttemptTarget } from "../../src/telemetry/call-telemetry.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import { buckets } from "../../src/telemetry/metrics-buckets.js";

const { values: args } = parseArgs({
  options: { calls: { type: "string", default: "200000" }, rounds: { type: "string", default: "7" } },
});
const calls = Number(args.calls);
const rounds = Number(args.rounds);

const aliases = ["chat", "fast", "smart"];
const deployments = [
  { provider: "openai", deployment: "openai/gpt-4o-mini", model: "gpt-4o-mini-2024-07-18" },
  { provider: "anthropic", deployment: "anthropic/claude-haiku", model: "claude-3-5-haiku-20241022" },
];
const protocols = ["connect", "grpc"] as const;
const rpc = "sluice.v1.ChatService/StreamComplete";

/** The facts of one call, as the record holds them at its end. */
interface CallFacts {
  readonly alias: string;
  readonly provider: string;
  readonly deployment: string;
  readonly responseModel: string;
  readonly protocol: (typeof protocols)[number];
  readonly code: string;
  readonly durationS: number;
  readonly gatewayS: number;
  readonly ttftS: number;
  readonly tpotS: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly attemptS: number;
  readonly costUsd: number;
}

const facts: CallFacts[] = [];
for (let i = 0; i < 64; i++) {
  const target = deployments[i % 2]!;
  facts.push({
    alias: aliases[i % 3]!,
    provider: target.provider,
    deployment: target.deployment,
    responseModel: target.model,
    protocol: protocols[(i >> 2) % 2]!,
    code: "ok",
    durationS: 0.5 + (i % 7) * 0.9,
    gatewayS: 0.0002 + (i % 5) * 0.0001,
    ttftS: 0.2 + (i % 3) * 0.15,
    tpotS: 0.01 + (i % 4) * 0.004,
    inputTokens: 900 + i * 13,
    outputTokens: 150 + i * 7,
    attemptS: 0.49 + (i % 7) * 0.9,
    costUsd: 0.0004 + i * 0.00001,
  });
}

interface Variant {
  readonly name: string;
  record(call: CallFacts): void;
  scrape(): Promise<string>;
}

function promClientVariant(cached: boolean): Variant {
  const registry = new Registry();
  const inFlight = new Gauge({ name: "sluice_rpc_in_flight", help: "h", labelNames: ["rpc", "protocol"], registers: [registry] });
  const requests = new Counter({
    name: "sluice_rpc_requests_total",
    help: "h",
    labelNames: ["rpc", "protocol", "code"],
    registers: [registry],
  });
  const callLabels = ["alias", "provider", "deployment"] as const;
  const duration = new Histogram({
    name: "gen_ai_server_request_duration_seconds",
    help: "h",
    labelNames: [...callLabels, "code", "stream"],
    buckets: [...buckets.requestDuration],
    registers: [registry],
  });
  const gateway = new Histogram({
    name: "sluice_gateway_added_duration_seconds",
    help: "h",
    labelNames: ["alias", "stream"],
    buckets: [...buckets.gatewayAdded],
    registers: [registry],
  });
  const ttft = new Histogram({
    name: "gen_ai_server_time_to_first_token_seconds",
    help: "h",
    labelNames: callLabels,
    buckets: [...buckets.timeToFirstToken],
    registers: [registry],
  });
  const tpot = new Histogram({
    name: "gen_ai_server_time_per_output_token_seconds",
    help: "h",
    labelNames: callLabels,
    buckets: [...buckets.timePerOutputToken],
    registers: [registry],
  });
  const tokens = new Histogram({
    name: "gen_ai_client_token_usage",
    help: "h",
    labelNames: [...callLabels, "token_type"],
    buckets: [...buckets.tokenUsage],
    registers: [registry],
  });
  const attempts = new Counter({
    name: "sluice_upstream_attempts_total",
    help: "h",
    labelNames: [...callLabels, "outcome", "error_type"],
    registers: [registry],
  });
  const attemptDuration = new Histogram({
    name: "gen_ai_client_operation_duration_seconds",
    help: "h",
    labelNames: ["provider", "deployment", "outcome"],
    buckets: [...buckets.requestDuration],
    registers: [registry],
  });
  const cost = new Counter({ name: "sluice_cost_usd_total", help: "h", labelNames: callLabels, registers: [registry] });
  const models = new Counter({
    name: "sluice_upstream_model_answers_total",
    help: "h",
    labelNames: ["alias", "deployment", "response_model"],
    registers: [registry],
  });

  if (!cached) {
    return {
      name: "prom-client, labels per call",
      record(c) {
        inFlight.inc({ rpc, protocol: c.protocol });
        inFlight.dec({ rpc, protocol: c.protocol });
        requests.inc({ rpc, protocol: c.protocol, code: c.code });
        const labels = { alias: c.alias, provider: c.provider, deployment: c.deployment };
        duration.observe({ ...labels, code: c.code, stream: "true" }, c.durationS);
        gateway.observe({ alias: c.alias, stream: "true" }, c.gatewayS);
        ttft.observe(labels, c.ttftS);
        tpot.observe(labels, c.tpotS);
        tokens.observe({ ...labels, token_type: "input" }, c.inputTokens);
        tokens.observe({ ...labels, token_type: "output" }, c.outputTokens);
        attempts.inc({ ...labels, outcome: "ok", error_type: "" });
        attemptDuration.observe({ provider: c.provider, deployment: c.deployment, outcome: "ok" }, c.attemptS);
        cost.inc(labels, c.costUsd);
        models.inc({ alias: c.alias, deployment: c.deployment, response_model: c.responseModel });
      },
      scrape: () => registry.metrics(),
    };
  }

  /** The children of one (alias, deployment, protocol) tuple, resolved once. */
  interface Children {
    inFlight: Gauge.Internal<string>;
    requests: Counter.Internal;
    duration: Histogram.Internal<string>;
    gateway: Histogram.Internal<string>;
    ttft: Histogram.Internal<string>;
    tpot: Histogram.Internal<string>;
    input: Histogram.Internal<string>;
    output: Histogram.Internal<string>;
    attempts: Counter.Internal;
    attemptDuration: Histogram.Internal<string>;
    cost: Counter.Internal;
    models: Counter.Internal;
  }
  const byTuple = new Map<string, Map<string, Map<string, Children>>>();
  function children(c: CallFacts): Children {
    let byDeployment = byTuple.get(c.alias);
    if (byDeployment === undefined) byTuple.set(c.alias, (byDeployment = new Map()));
    let byProtocol = byDeployment.get(c.deployment);
    if (byProtocol === undefined) byDeployment.set(c.deployment, (byProtocol = new Map()));
    let found = byProtocol.get(c.protocol);
    if (found === undefined) {
      const labels = { alias: c.alias, provider: c.provider, deployment: c.deployment };
      found = {
        inFlight: inFlight.labels({ rpc, protocol: c.protocol }),
        requests: requests.labels({ rpc, protocol: c.protocol, code: "ok" }),
        duration: duration.labels({ ...labels, code: "ok", stream: "true" }),
        gateway: gateway.labels({ alias: c.alias, stream: "true" }),
        ttft: ttft.labels(labels),
        tpot: tpot.labels(labels),
        input: tokens.labels({ ...labels, token_type: "input" }),
        output: tokens.labels({ ...labels, token_type: "output" }),
        attempts: attempts.labels({ ...labels, outcome: "ok", error_type: "" }),
        attemptDuration: attemptDuration.labels({ provider: c.provider, deployment: c.deployment, outcome: "ok" }),
        cost: cost.labels(labels),
        models: models.labels({ alias: c.alias, deployment: c.deployment, response_model: c.responseModel }),
      };
      byProtocol.set(c.protocol, found);
    }
    return found;
  }
  return {
    name: "prom-client, cached children",
    record(c) {
      const s = children(c);
      s.inFlight.inc();
      s.inFlight.dec();
      s.requests.inc();
      s.duration.observe(c.durationS);
      s.gateway.observe(c.gatewayS);
      s.ttft.observe(c.ttftS);
      s.tpot.observe(c.tpotS);
      s.input.observe(c.inputTokens);
      s.output.observe(c.outputTokens);
      s.attempts.inc();
      s.attemptDuration.observe(c.attemptS);
      s.cost.inc(c.costUsd);
      s.models.inc();
    },
    scrape: () => registry.metrics(),
  };
}

/** A pull reader: what the Prometheus exporter is, without its HTTP server. */
class PullReader extends MetricReader {
  constructor() {
    super({
      aggregationSelector: () => ({ type: AggregationType.DEFAULT }),
      aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE,
    });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function otelVariant(): Variant {
  const reader = new PullReader();
  const histogramView = (name: string, boundaries: readonly number[]) => ({
    instrumentName: name,
    instrumentType: InstrumentType.HISTOGRAM,
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM as const, options: { boundaries: [...boundaries] } },
  });
  const provider = new MeterProvider({
    readers: [reader],
    views: [
      histogramView("gen_ai.server.request.duration", buckets.requestDuration),
      histogramView("sluice.gateway.added.duration", buckets.gatewayAdded),
      histogramView("gen_ai.server.time_to_first_token", buckets.timeToFirstToken),
      histogramView("gen_ai.server.time_per_output_token", buckets.timePerOutputToken),
      histogramView("gen_ai.client.token.usage", buckets.tokenUsage),
      histogramView("gen_ai.client.operation.duration", buckets.requestDuration),
    ],
  });
  const meter = provider.getMeter("sluice");
  const inFlight = meter.createUpDownCounter("sluice.rpc.in_flight");
  const requests = meter.createCounter("sluice.rpc.requests");
  const duration = meter.createHistogram("gen_ai.server.request.duration", { unit: "s" });
  const gateway = meter.createHistogram("sluice.gateway.added.duration", { unit: "s" });
  const ttft = meter.createHistogram("gen_ai.server.time_to_first_token", { unit: "s" });
  const tpot = meter.createHistogram("gen_ai.server.time_per_output_token", { unit: "s" });
  const tokens = meter.createHistogram("gen_ai.client.token.usage", { unit: "{token}" });
  const attempts = meter.createCounter("sluice.upstream.attempts");
  const attemptDuration = meter.createHistogram("gen_ai.client.operation.duration", { unit: "s" });
  const cost = meter.createCounter("sluice.cost", { unit: "USD" });
  const models = meter.createCounter("sluice.upstream.model.answers");

  type Attrs = Record<string, string>;
  interface Tuple {
    rpc: Attrs;
    requests: Attrs;
    duration: Attrs;
    gateway: Attrs;
    call: Attrs;
    input: Attrs;
    output: Attrs;
    attempts: Attrs;
    attemptDuration: Attrs;
    models: Attrs;
  }
  const byTuple = new Map<string, Map<string, Map<string, Tuple>>>();
  function tuple(c: CallFacts): Tuple {
    let byDeployment = byTuple.get(c.alias);
    if (byDeployment === undefined) byTuple.set(c.alias, (byDeployment = new Map()));
    let byProtocol = byDeployment.get(c.deployment);
    if (byProtocol === undefined) byDeployment.set(c.deployment, (byProtocol = new Map()));
    let found = byProtocol.get(c.protocol);
    if (found === undefined) {
      const call = { alias: c.alias, provider: c.provider, deployment: c.deployment };
      found = {
        rpc: { rpc, protocol: c.protocol },
        requests: { rpc, protocol: c.protocol, code: "ok" },
        duration: { ...call, code: "ok", stream: "true" },
        gateway: { alias: c.alias, stream: "true" },
        call,
        input: { ...call, token_type: "input" },
        output: { ...call, token_type: "output" },
        attempts: { ...call, outcome: "ok", error_type: "" },
        attemptDuration: { provider: c.provider, deployment: c.deployment, outcome: "ok" },
        models: { alias: c.alias, deployment: c.deployment, response_model: c.responseModel },
      };
      byProtocol.set(c.protocol, found);
    }
    return found;
  }
  const serializer = new PrometheusSerializer("", false);
  return {
    name: "OTel SDK + Prometheus exporter",
    record(c) {
      const t = tuple(c);
      inFlight.add(1, t.rpc);
      inFlight.add(-1, t.rpc);
      requests.add(1, t.requests);
      duration.record(c.durationS, t.duration);
      gateway.record(c.gatewayS, t.gateway);
      ttft.record(c.ttftS, t.call);
      tpot.record(c.tpotS, t.call);
      tokens.record(c.inputTokens, t.input);
      tokens.record(c.outputTokens, t.output);
      attempts.add(1, t.attempts);
      attemptDuration.record(c.attemptS, t.attemptDuration);
      cost.add(c.costUsd, t.call);
      models.add(1, t.models);
    },
    async scrape() {
      const { resourceMetrics } = await reader.collect();
      return serializer.serialize(resourceMetrics);
    },
  };
}

function sluiceVariant(): Variant {
  const metrics = createMetrics({
    breakerStates: () => ({}),
    inFlight: () => ({}),
    aliases,
    deployments: deployments.map((d) => d.deployment),
    processMetrics: false,
  });
  const targets = new Map<string, AttemptTarget>(
    deployments.map((d) => [
      d.deployment,
      {
        provider: d.provider,
        providerType: d.provider,
        deployment: d.deployment,
        model: d.model,
        serverAddress: "api.example.com",
        serverPort: 443,
        price: { inputPerMillion: 0.15, outputPerMillion: 0.6 },
      },
    ]),
  );
  return {
    name: "Sluice (src/telemetry/metrics)",
    record(c) {
      // The record's times are what the hub keeps: started, ttft, upstream time.
      const now = performance.now();
      const record = new CallRecord(rpc, c.protocol, true, now - c.durationS * 1000);
      metrics.callStarted(record);
      const target = targets.get(c.deployment)!;
      record.alias = c.alias;
      record.provider = c.provider;
      record.providerType = c.provider;
      record.deployment = c.deployment;
      record.responseModel = c.responseModel;
      record.price = target.price;
      record.inputTokens = c.inputTokens;
      record.outputTokens = c.outputTokens;
      record.ttftMs = c.ttftS * 1000;
      record.upstreamMs = (c.durationS - c.gatewayS) * 1000;
      metrics.attemptEnded(record, {
        target,
        role: { alias: c.alias, hedged: false },
        outcome: "ok",
        error: undefined,
        durationMs: c.attemptS * 1000,
      });
      metrics.callEnded(record, undefined);
    },
    scrape: () => metrics.exposition(),
  };
}

/**
 * CPU ns per call, per round. The Sluice variant also allocates and fills its CallRecord in
 * the loop (the others record plain facts), so its number includes that: it errs against itself.
 */
function measure(variant: Variant): number[] {
  const nsPerCall: number[] = [];
  for (let i = 0; i < calls / 4; i++) variant.record(facts[i % facts.length]!);
  for (let round = 0; round < rounds; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < calls; i++) variant.record(facts[i % facts.length]!);
    const used = process.cpuUsage(before);
    nsPerCall.push(((used.user + used.system) * 1000) / calls);
  }
  return nsPerCall;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

console.log(`node ${process.version}, ${calls} calls × ${rounds} rounds per variant; CPU ns per call (13 recordings)\n`);
console.log("| variant | ns/call median | min–max | one scrape, ms | exposition bytes |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const make of [() => promClientVariant(false), () => promClientVariant(true), otelVariant, sluiceVariant]) {
  const variant = make();
  const nsPerCall = measure(variant);
  await variant.scrape();
  const t0 = performance.now();
  const text = await variant.scrape();
  const scrapeMs = performance.now() - t0;
  const min = Math.min(...nsPerCall);
  const max = Math.max(...nsPerCall);
  console.log(
    `| ${variant.name} | ${median(nsPerCall).toFixed(0)} | ${min.toFixed(0)}–${max.toFixed(0)} | ${scrapeMs.toFixed(2)} | ${text.length} |`,
  );
}
