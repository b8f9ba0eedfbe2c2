import type { ConnectError } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { CallProtocol, CallRecord } from "./call-record.js";
import type { EndedAttempt, MetricsBackend } from "./call-telemetry-hub.js";
import type { AttemptOutcome, CallEvent } from "./call-telemetry.js";
import { codeNames, errorType } from "./error-type.js";
import { CappedSeries } from "./metrics-capped.js";
import { type CallFamilies, createCallFamilies } from "./metrics-families.js";
import type { HistogramSeries, LabelSet, ValueSeries } from "./metrics-series.js";
import {
  type CacheMetrics,
  type LimitsMetrics,
  type LimitsMetricsDeps,
  registerCacheMetrics,
  registerLimitsMetrics,
} from "./metrics-limits.js";
import { type GatewayState, registerStateGauges } from "./metrics-state.js";
import { registerServerLoadMetrics, type ServerLoadMetrics } from "./metrics-server.js";

/** Prometheus metrics of calls, attempts and the gateway's state. */
export interface Metrics extends MetricsBackend {
  /** Limit refusals and state failures (admission reports them here). */
  readonly limits: LimitsMetrics;
  /** Response cache results (the cache layer reports them here). */
  readonly cache: CacheMetrics;
  /** Calls in progress, the call queue and load-shedding refusals (the server reports them here). */
  readonly serverLoad: ServerLoadMetrics;
  /**
   * A configuration reload: the new configuration's aliases, tenants and deployments become
   * label values too (the sets stay bounded: only configured names). Series of names it
   * dropped stay (counters do not go back), and `deployments` is what the breaker gauge lists.
   */
  extendLabels(labels: { aliases: readonly string[]; tenants: readonly string[]; deployments: readonly string[] }): void;
  /** `sluice_config_reloads_total{result}` and, when applied, `sluice_config_last_reload_success_timestamp_seconds`. */
  configReloaded(result: "applied" | "rejected"): void;
  /** The text exposition format (what GET /metrics answers). */
  exposition(): Promise<string>;
  /** Its content type. */
  readonly contentType: string;
}

export interface MetricsDeps extends GatewayState {
  /** The configured aliases: only these become `alias` values (a caller's unknown alias never does). */
  readonly aliases: readonly string[];
  /** The configured tenants: only these become `tenant` values. Default none. */
  readonly tenants?: readonly string[];
  /** Node's process metrics (CPU, memory, event loop lag, GC) in the same registry. Default true. */
  readonly processMetrics?: boolean;
  /** Where limits live and whether it answers (sluice_state_up). */
  readonly stateHealth?: LimitsMetricsDeps["stateHealth"];
  /** Distinct provider-reported models per deployment before the rest count as "other". Default 8. */
  readonly maxResponseModels?: number;
}

/** Distinct error types per deployment before the rest count as "other" (they are bounded already; this is a backstop). */
const maxErrorTypes = 32;
/** Distinct RPCs (the route table's, a handful): a backstop like the others. */
const maxRpcs = 64;
/** Connect codes are 1..16; 0 is ok. */
const codeSlots = 17;
const protocols: readonly CallProtocol[] = ["connect", "grpc", "grpc-web"];
const outcomes: readonly AttemptOutcome[] = ["ok", "error", "cancelled", "superseded"];

/**
 * The Prometheus metrics of one gateway: its own prom-client Registry (never the global
 * one — tests run several gateways in a process), the call families fed by the call
 * telemetry hub, and gauges read at scrape time.
 *
 * Hot-path cost: each call resolves its series by a few Map lookups on strings it already
 * holds (RPC, alias, deployment) and array indexes (protocol, code, outcome); recording is
 * then increments on those series — no label objects, no key strings, no allocation per
 * call (bench/micro/metrics-libraries.ts, docs/metrics.md).
 */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  const families = createCallFamilies(registry);
  // Read at scrape time: a configuration reload replaces the list.
  let configuredDeployments = deps.deployments;
  registerStateGauges(registry, {
    breakerStates: deps.breakerStates,
    inFlight: deps.inFlight,
    retryBudget: deps.retryBudget,
    get deployments() {
      return configuredDeployments;
    },
  });
  const limits = registerLimitsMetrics(registry, { tenants: deps.tenants ?? [], stateHealth: deps.stateHealth });
  const cache = registerCacheMetrics(registry);
  const reloads = new Counter({
    name: "sluice_config_reloads_total",
    help: 'Configuration reloads (file change or SIGHUP): "applied", or "rejected" (invalid; the running configuration kept serving).',
    labelNames: ["result"],
    registers: [registry],
  });
  const lastReload = new Gauge({
    name: "sluice_config_last_reload_success_timestamp_seconds",
    help: "When the configuration was last loaded successfully (startup or reload), in seconds since the epoch.",
    registers: [registry],
  });
  lastReload.set(Date.now() / 1000);
  const serverLoad = registerServerLoadMetrics(registry);
  if (deps.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters (promtool check metrics flags them); each is the sum of the
    // per-type gauge beside it (nodejs_active_handles{type}...), so nothing is lost.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      registry.removeSingleMetric(name);
    }
  }

  const known = new Set(deps.deployments);
  const maxResponseModels = deps.maxResponseModels ?? 8;
  const rpcs = new CappedSeries(maxRpcs, (rpc) => new RpcSeries(families, rpc));
  const aliases = new Map<string, AliasSeries>();
  for (const alias of deps.aliases) aliases.set(alias, new AliasSeries(families, alias, known, maxResponseModels));
  // Events of a call whose alias is not configured (none in practice: events follow routing).
  const noAlias = new AliasSeries(families, "", known, maxResponseModels);
  const upstreams = new Map<string, UpstreamSeries>();
  const tenants = new Map<string, TenantSeries>();
  for (const tenant of deps.tenants ?? []) tenants.set(tenant, new TenantSeries(families, tenant));

  function upstream(provider: string, deployment: string): UpstreamSeries {
    let series = upstreams.get(deployment);
    if (series === undefined) {
      // Deployments come from the configuration; anything else (a bug) is folded, never a new series.
      const bounded = known.has(deployment);
      const key = bounded ? deployment : "other";
      series = upstreams.get(key);
      if (series === undefined) upstreams.set(key, (series = new UpstreamSeries(families, bounded ? provider : "other", key)));
    }
    return series;
  }

  return {
    contentType: registry.contentType,
    limits,
    cache,
    serverLoad,
    exposition: () => registry.metrics(),

    extendLabels(labels) {
      for (const deployment of labels.deployments) known.add(deployment);
      configuredDeployments = labels.deployments;
      for (const alias of labels.aliases) {
        if (!aliases.has(alias)) aliases.set(alias, new AliasSeries(families, alias, known, maxResponseModels));
      }
      for (const tenant of labels.tenants) if (!tenants.has(tenant)) tenants.set(tenant, new TenantSeries(families, tenant));
      limits.addTenants?.(labels.tenants);
    },

    configReloaded(result) {
      reloads.inc({ result });
      if (result === "applied") lastReload.set(Date.now() / 1000);
    },

    callStarted(record) {
      rpcs.get(record.rpc).inFlight[protocolIndex(record.protocol)]!.value++;
    },

    attemptEnded(_record, attempt: EndedAttempt) {
      const { target, outcome } = attempt;
      upstream(target.provider, target.deployment).ended(outcome, attempt.error, attempt.durationMs / 1000);
    },

    event(record, event: CallEvent, deployment) {
      (aliases.get(record.alias) ?? noAlias).event(event, deployment);
    },

    callEnded(record, error: ConnectError | undefined) {
      const code = error === undefined ? 0 : error.code < codeSlots && error.code > 0 ? error.code : 2;
      const protocol = protocolIndex(record.protocol);
      const rpc = rpcs.get(record.rpc);
      rpc.inFlight[protocol]!.value--;
      rpc.ended(protocol, code);
      // Chat calls only, for a configured alias (ListModels has none; an unknown alias is a caller's typo).
      const alias = aliases.get(record.alias);
      if (alias !== undefined) alias.callEnded(record, code, performance.now() - record.started);
      if (record.tenant !== "") tenants.get(record.tenant)?.callEnded(record, code);
    },
  };
}

function protocolIndex(protocol: CallProtocol): number {
  return protocol === "connect" ? 0 : protocol === "grpc" ? 1 : 2;
}

/** One RPC's in-flight gauges (per protocol) and ended counters (per protocol and code, created on first use). */
class RpcSeries {
  readonly inFlight: readonly ValueSeries[];
  private readonly requests: (ValueSeries | undefined)[] = new Array(protocols.length * codeSlots).fill(undefined);

  constructor(
    private readonly families: CallFamilies,
    private readonly rpc: string,
  ) {
    this.inFlight = protocols.map((protocol) => families.rpcInFlight.series({ rpc, protocol }));
  }

  ended(protocol: number, code: number): void {
    const slot = protocol * codeSlots + code;
    const series = (this.requests[slot] ??= this.families.rpcRequests.series({
      rpc: this.rpc,
      protocol: protocols[protocol]!,
      code: codeNames[code] ?? "ok",
    }));
    series.value++;
  }
}

/** One alias's series: its calls by answering deployment, gateway-added time, skips and other events. */
class AliasSeries {
  private readonly calls = new Map<string, CallSeries>();
  private readonly gatewayAdded: (HistogramSeries | undefined)[] = [undefined, undefined];
  private readonly skips = new Map<string, ValueSeries>();
  private readonly budgetExhausted = new Map<string, ValueSeries>();
  private fallbacks: ValueSeries | undefined = undefined;
  private degraded: ValueSeries | undefined = undefined;

  constructor(
    private readonly families: CallFamilies,
    private readonly alias: string,
    private readonly known: ReadonlySet<string>,
    private readonly maxResponseModels: number,
  ) {}

  callEnded(record: CallRecord, code: number, durationMs: number): void {
    const calls = this.callSeries(record.provider, record.deployment);
    const stream = record.stream ? 1 : 0;
    calls.duration(stream, code).observe(durationMs / 1000);
    const added = (this.gatewayAdded[stream] ??= this.families.gatewayAdded.series({
      alias: this.alias,
      stream: stream === 1 ? "true" : "false",
    }));
    // Attempts' time overlaps (hedging) only once in upstreamMs, so this never goes below 0 but for clock rounding.
    added.observe(Math.max(0, durationMs - record.upstreamMs) / 1000);
    const ttftMs = record.ttftMs;
    if (ttftMs !== undefined) {
      calls.ttft().observe(ttftMs / 1000);
      if (code === 0 && record.outputTokens > 1) calls.tpot().observe((durationMs - ttftMs) / (record.outputTokens - 1) / 1000);
    }
    if (record.deployment === "") return;
    if (record.inputTokens > 0 || record.outputTokens > 0) {
      calls.tokens(0).observe(record.inputTokens);
      calls.tokens(1).observe(record.outputTokens);
    }
    const cost = record.costUsd();
    if (cost !== undefined && cost > 0) calls.cost().value += cost;
    if (record.responseModel !== "") calls.answeringModel(record.responseModel).value++;
  }

  event(event: CallEvent, deployment: string | undefined): void {
    const families = this.families;
    const alias = this.alias;
    switch (event) {
      case "breaker_open_skip":
      case "in_flight_limit_skip": {
        const reason = event === "breaker_open_skip" ? "breaker_open" : "in_flight_limit";
        this.perDeployment(this.skips, event, deployment, (d) => families.skips.series({ alias, deployment: d, reason })).value++;
        return;
      }
      case "retry_budget_exhausted":
        this.perDeployment(this.budgetExhausted, event, deployment, (d) =>
          families.retryBudgetExhausted.series({ alias, deployment: d }),
        ).value++;
        return;
      case "fallback":
        (this.fallbacks ??= families.fallbacks.series({ alias })).value++;
        return;
      case "degraded":
        (this.degraded ??= families.degraded.series({ alias })).value++;
        return;
    }
  }

  /** A per-deployment event counter; the map key joins the event and the deployment only on first use. */
  private perDeployment(
    map: Map<string, ValueSeries>,
    event: string,
    deployment: string | undefined,
    make: (deployment: string) => ValueSeries,
  ): ValueSeries {
    const name = deployment === undefined ? "" : this.known.has(deployment) ? deployment : "other";
    // Events are rare (a skip, an exhausted budget): a key string here costs nothing that matters.
    const key = `${event}\u0000${name}`;
    let series = map.get(key);
    if (series === undefined) map.set(key, (series = make(name)));
    return series;
  }

  private callSeries(provider: string, deployment: string): CallSeries {
    let series = this.calls.get(deployment);
    if (series === undefined) {
      // "" is a call no deployment answered; anything not configured (a bug) is folded, never a new series.
      const bounded = deployment === "" || this.known.has(deployment);
      const key = bounded ? deployment : "other";
      series = this.calls.get(key);
      if (series === undefined) {
        const labels = { alias: this.alias, provider: bounded ? provider : "other", deployment: key };
        this.calls.set(key, (series = new CallSeries(this.families, labels, this.maxResponseModels)));
      }
    }
    return series;
  }
}

/** One (alias, answering deployment)'s call series, each created on its first observation. */
class CallSeries {
  private readonly durations: (HistogramSeries | undefined)[] = new Array(2 * codeSlots).fill(undefined);
  private ttftSeries: HistogramSeries | undefined = undefined;
  private tpotSeries: HistogramSeries | undefined = undefined;
  private readonly tokenSeries: (HistogramSeries | undefined)[] = [undefined, undefined];
  private costSeries: ValueSeries | undefined = undefined;
  private readonly models: CappedSeries<ValueSeries>;

  constructor(
    private readonly families: CallFamilies,
    private readonly labels: LabelSet & { alias: string; provider: string; deployment: string },
    maxResponseModels: number,
  ) {
    this.models = new CappedSeries(maxResponseModels, (model) =>
      families.answeringModels.series({ alias: labels.alias, deployment: labels.deployment, response_model: model }),
    );
  }

  duration(stream: number, code: number): HistogramSeries {
    return (this.durations[stream * codeSlots + code] ??= this.families.requestDuration.series({
      ...this.labels,
      code: codeNames[code] ?? "ok",
      stream: stream === 1 ? "true" : "false",
    }));
  }

  ttft(): HistogramSeries {
    return (this.ttftSeries ??= this.families.timeToFirstToken.series(this.labels));
  }

  tpot(): HistogramSeries {
    return (this.tpotSeries ??= this.families.timePerOutputToken.series(this.labels));
  }

  /** 0: input, 1: output. */
  tokens(type: 0 | 1): HistogramSeries {
    return (this.tokenSeries[type] ??= this.families.tokenUsage.series({
      ...this.labels,
      token_type: type === 0 ? "input" : "output",
    }));
  }

  cost(): ValueSeries {
    return (this.costSeries ??= this.families.cost.series(this.labels));
  }

  answeringModel(model: string): ValueSeries {
    return this.models.get(model);
  }
}

/** One deployment's upstream attempts: counters and durations by outcome, errors by (capped) type. */
class UpstreamSeries {
  private readonly counts: (ValueSeries | undefined)[] = new Array(outcomes.length).fill(undefined);
  private readonly durations: (HistogramSeries | undefined)[] = new Array(outcomes.length).fill(undefined);
  private readonly errors: CappedSeries<ValueSeries>;

  constructor(
    private readonly families: CallFamilies,
    private readonly provider: string,
    private readonly deployment: string,
  ) {
    this.errors = new CappedSeries(maxErrorTypes, (type) =>
      families.attempts.series({ provider, deployment, outcome: "error", error_type: type }),
    );
  }

  ended(outcome: AttemptOutcome, error: unknown, seconds: number): void {
    const index = outcomes.indexOf(outcome);
    const { provider, deployment } = this;
    const counter =
      outcome === "error"
        ? this.errors.get(errorType(error))
        : (this.counts[index] ??= this.families.attempts.series({ provider, deployment, outcome, error_type: "" }));
    counter.value++;
    (this.durations[index] ??= this.families.attemptDuration.series({ provider, deployment, outcome })).observe(seconds);
  }
}

/** One tenant's calls by code (created on first use), its tokens and its cost. */
class TenantSeries {
  private readonly requests: (ValueSeries | undefined)[] = new Array(codeSlots).fill(undefined);
  private readonly inputTokens: ValueSeries;
  private readonly outputTokens: ValueSeries;
  private readonly cost: ValueSeries;

  constructor(
    private readonly families: CallFamilies,
    private readonly tenant: string,
  ) {
    this.inputTokens = families.tenantTokens.series({ tenant, token_type: "input" });
    this.outputTokens = families.tenantTokens.series({ tenant, token_type: "output" });
    this.cost = families.tenantCost.series({ tenant });
  }

  callEnded(record: CallRecord, code: number): void {
    const series = (this.requests[code] ??= this.families.tenantRequests.series({
      tenant: this.tenant,
      code: codeNames[code] ?? "ok",
    }));
    series.value++;
    this.inputTokens.value += record.inputTokens;
    this.outputTokens.value += record.outputTokens;
    const cost = record.costUsd();
    if (cost !== undefined) this.cost.value += cost;
  }
}
