import { Code, ConnectError } from "@connectrpc/connect";
import { register as globalRegistry } from "prom-client";
import { describe, expect, it } from "vitest";
import { failures } from "../errors/failure-table.js";
import { UpstreamError } from "../errors/gateway-error.js";
import { familyNames, parseExposition, sampleValue, type Sample } from "../../test/helpers/metrics-exposition.js";
import { CallRecord, type CallProtocol } from "./call-record.js";
import type { AttemptTarget } from "./call-telemetry.js";
import { createMetrics, type MetricsDeps } from "./metrics.js";

const rpc = "sluice.v1.ChatService/StreamComplete";

const openai: AttemptTarget = {
  provider: "openai",
  providerType: "openai",
  deployment: "openai/gpt-4o-mini",
  model: "gpt-4o-mini",
  serverAddress: "api.openai.com",
  serverPort: 443,
  price: { inputPerMillion: 2, outputPerMillion: 8, cachedInputPerMillion: 1 },
};
const anthropic: AttemptTarget = {
  ...openai,
  provider: "anthropic",
  providerType: "anthropic",
  deployment: "anthropic/claude-haiku",
  model: "claude-haiku",
  price: undefined,
};

function metricsFor(overrides: Partial<MetricsDeps> = {}) {
  return createMetrics({
    aliases: ["chat", "backup"],
    deployments: [openai.deployment, anthropic.deployment],
    breakerStates: () => ({}),
    inFlight: () => ({}),
    processMetrics: false,
    ...overrides,
  });
}

async function samples(metrics: { exposition(): Promise<string> }): Promise<Sample[]> {
  return parseExposition(await metrics.exposition());
}

/** A record as the interceptor and the call runner leave it, the call having started `ageMs` ago. */
function record(protocol: CallProtocol, stream: boolean, ageMs: number, alias = "chat"): CallRecord {
  const r = new CallRecord(stream ? rpc : "sluice.v1.ChatService/Complete", protocol, stream, performance.now() - ageMs);
  r.alias = alias;
  return r;
}

function answered(r: CallRecord, target: AttemptTarget, responseModel: string): void {
  r.provider = target.provider;
  r.providerType = target.providerType;
  r.deployment = target.deployment;
  r.upstreamModel = target.model;
  r.price = target.price;
  r.responseModel = responseModel;
}

const call = { alias: "chat", provider: "openai", deployment: "openai/gpt-4o-mini" };

describe("metrics", () => {
  it("counts a configured tenant's calls by code, its tokens and cost; anonymous and unknown tenants make no series", async () => {
    const metrics = metricsFor({ tenants: ["team-a"] });
    const ok = record("connect", false, 10);
    ok.tenant = "team-a";
    answered(ok, openai, "gpt-4o-mini-2024-07-18");
    ok.inputTokens = 1_000;
    ok.outputTokens = 500;
    metrics.callStarted(ok);
    metrics.callEnded(ok, undefined);
    const refused = record("connect", false, 1);
    refused.tenant = "team-a";
    metrics.callStarted(refused);
    metrics.callEnded(refused, new ConnectError("no", Code.PermissionDenied));
    for (const tenant of ["", "someone-else"]) {
      const other = record("connect", false, 1);
      other.tenant = tenant;
      metrics.callStarted(other);
      metrics.callEnded(other, undefined);
    }
    const all = await samples(metrics);
    expect(sampleValue(all, "sluice_tenant_requests_total", { tenant: "team-a", code: "ok" })).toBe(1);
    expect(sampleValue(all, "sluice_tenant_requests_total", { tenant: "team-a", code: "permission_denied" })).toBe(1);
    expect(sampleValue(all, "sluice_tenant_tokens_total", { tenant: "team-a", token_type: "input" })).toBe(1_000);
    expect(sampleValue(all, "sluice_tenant_tokens_total", { tenant: "team-a", token_type: "output" })).toBe(500);
    // 1,000 × $2/M + 500 × $8/M
    expect(sampleValue(all, "sluice_tenant_cost_usd_total", { tenant: "team-a" })).toBeCloseTo(0.006, 10);
    const tenants = all
      .filter((sample) => sample.name === "sluice_tenant_requests_total")
      .map((sample) => sample.labels["tenant"]);
    expect(new Set(tenants)).toEqual(new Set(["team-a"]));
  });

  it("records a streamed call that needed a retry: RPC, duration, TTFT, time per token, tokens, cost, attempts, answering model", async () => {
    const metrics = metricsFor();
    const r = record("grpc", true, 1500);
    metrics.callStarted(r);
    expect(sampleValue(await samples(metrics), "sluice_rpc_in_flight", { rpc, protocol: "grpc" })).toBe(1);

    const rateLimited = new UpstreamError({
      failure: failures.rateLimited,
      provider: "openai",
      message: "slow down",
      status: 429,
    });
    const role = { alias: "chat", hedged: false };
    metrics.attemptEnded(r, { target: openai, role, outcome: "error", error: rateLimited, durationMs: 200 });
    metrics.attemptEnded(r, { target: openai, role, outcome: "ok", error: undefined, durationMs: 1200 });
    answered(r, openai, "gpt-4o-mini-2024-07-18");
    r.ttftMs = 300;
    r.upstreamMs = 1490;
    r.inputTokens = 1000;
    r.cachedInputTokens = 200;
    r.outputTokens = 101;
    metrics.callEnded(r, undefined);

    const s = await samples(metrics);
    expect(sampleValue(s, "sluice_rpc_in_flight", { rpc, protocol: "grpc" })).toBe(0);
    expect(sampleValue(s, "sluice_rpc_requests_total", { rpc, protocol: "grpc", code: "ok" })).toBe(1);

    const duration = { ...call, code: "ok", stream: "true" };
    expect(sampleValue(s, "gen_ai_server_request_duration_seconds_count", duration)).toBe(1);
    // 1.5 s: above the 1.28 s bound, within 2.56 s.
    expect(sampleValue(s, "gen_ai_server_request_duration_seconds_bucket", { ...duration, le: "1.28" })).toBe(0);
    expect(sampleValue(s, "gen_ai_server_request_duration_seconds_bucket", { ...duration, le: "2.56" })).toBe(1);
    expect(sampleValue(s, "gen_ai_server_request_duration_seconds_bucket", { ...duration, le: "+Inf" })).toBe(1);
    expect(sampleValue(s, "gen_ai_server_request_duration_seconds_sum", duration)).toBeGreaterThanOrEqual(1.5);

    expect(sampleValue(s, "gen_ai_server_time_to_first_token_seconds_sum", call)).toBeCloseTo(0.3, 9);
    expect(sampleValue(s, "gen_ai_server_time_to_first_token_seconds_bucket", { ...call, le: "0.25" })).toBe(0);
    expect(sampleValue(s, "gen_ai_server_time_to_first_token_seconds_bucket", { ...call, le: "0.5" })).toBe(1);
    // (1.5 s − 0.3 s) / 100 tokens after the first = 12 ms.
    expect(sampleValue(s, "gen_ai_server_time_per_output_token_seconds_bucket", { ...call, le: "0.01" })).toBe(0);
    expect(sampleValue(s, "gen_ai_server_time_per_output_token_seconds_bucket", { ...call, le: "0.025" })).toBe(1);

    expect(sampleValue(s, "gen_ai_client_token_usage_sum", { ...call, token_type: "input" })).toBe(1000);
    expect(sampleValue(s, "gen_ai_client_token_usage_sum", { ...call, token_type: "output" })).toBe(101);
    expect(sampleValue(s, "gen_ai_client_token_usage_bucket", { ...call, token_type: "input", le: "1024" })).toBe(1);
    expect(sampleValue(s, "gen_ai_client_token_usage_bucket", { ...call, token_type: "input", le: "256" })).toBe(0);

    // 800 uncached × $2/M + 200 cached × $1/M + 101 output × $8/M.
    expect(sampleValue(s, "sluice_cost_usd_total", call)).toBeCloseTo(0.002608, 12);
    // Gateway-added: ~1.5 s total − 1.49 s upstream = ~10 ms.
    const added = sampleValue(s, "sluice_gateway_added_duration_seconds_sum", { alias: "chat", stream: "true" })!;
    expect(added).toBeGreaterThanOrEqual(0.01);
    expect(added).toBeLessThan(0.5);

    const upstream = { provider: "openai", deployment: "openai/gpt-4o-mini" };
    expect(
      sampleValue(s, "sluice_upstream_attempts_total", { ...upstream, outcome: "error", error_type: "UPSTREAM_RATE_LIMITED" }),
    ).toBe(1);
    expect(sampleValue(s, "sluice_upstream_attempts_total", { ...upstream, outcome: "ok", error_type: "" })).toBe(1);
    expect(sampleValue(s, "gen_ai_client_operation_duration_seconds_sum", { ...upstream, outcome: "ok" })).toBeCloseTo(1.2, 9);
    expect(sampleValue(s, "gen_ai_client_operation_duration_seconds_count", { ...upstream, outcome: "error" })).toBe(1);

    expect(
      sampleValue(s, "sluice_upstream_model_answers_total", {
        alias: "chat",
        deployment: "openai/gpt-4o-mini",
        response_model: "gpt-4o-mini-2024-07-18",
      }),
    ).toBe(1);
  });

  it("a failed unary call: its code on the RPC counter and the duration; no TTFT, tokens or cost", async () => {
    const metrics = metricsFor();
    const r = record("connect", false, 50);
    metrics.callStarted(r);
    metrics.callEnded(r, new ConnectError("all deployments unavailable", Code.Unavailable));
    const s = await samples(metrics);
    const unary = "sluice.v1.ChatService/Complete";
    expect(sampleValue(s, "sluice_rpc_requests_total", { rpc: unary, protocol: "connect", code: "unavailable" })).toBe(1);
    expect(
      sampleValue(s, "gen_ai_server_request_duration_seconds_count", {
        alias: "chat",
        provider: "",
        deployment: "",
        code: "unavailable",
        stream: "false",
      }),
    ).toBe(1);
    expect(s.filter((x) => x.name.startsWith("gen_ai_server_time_to_first_token"))).toEqual([]);
    expect(s.filter((x) => x.name.startsWith("gen_ai_client_token_usage"))).toEqual([]);
    expect(s.filter((x) => x.name === "sluice_cost_usd_total")).toEqual([]);
  });

  it("a caller's unknown alias never becomes a label: the call counts by RPC and code only", async () => {
    const metrics = metricsFor();
    const r = record("connect", false, 1, "user-typed-anything-42");
    metrics.callStarted(r);
    metrics.callEnded(r, new ConnectError("model not served", Code.NotFound));
    const text = await metrics.exposition();
    expect(text).not.toContain("user-typed-anything-42");
    expect(
      sampleValue(parseExposition(text), "sluice_rpc_requests_total", {
        rpc: "sluice.v1.ChatService/Complete",
        protocol: "connect",
        code: "not_found",
      }),
    ).toBe(1);
  });

  it("caps the provider-reported models per deployment: the rest count as other", async () => {
    const metrics = metricsFor({ maxResponseModels: 2 });
    for (const model of ["m-1", "m-2", "m-3", "m-4", "m-1"]) {
      const r = record("grpc", false, 1);
      metrics.callStarted(r);
      answered(r, openai, model);
      metrics.callEnded(r, undefined);
    }
    const s = await samples(metrics);
    const answers = (model: string) =>
      sampleValue(s, "sluice_upstream_model_answers_total", {
        alias: "chat",
        deployment: openai.deployment,
        response_model: model,
      });
    expect([answers("m-1"), answers("m-2"), answers("other")]).toEqual([2, 1, 2]);
    expect(answers("m-3")).toBeUndefined();
  });

  it("counts skips, exhausted retry budgets, fallbacks and degraded answers by alias and deployment", async () => {
    const metrics = metricsFor();
    const r = record("grpc", false, 1);
    metrics.event(r, "breaker_open_skip", openai.deployment);
    metrics.event(r, "breaker_open_skip", openai.deployment);
    metrics.event(r, "in_flight_limit_skip", anthropic.deployment);
    metrics.event(r, "retry_budget_exhausted", openai.deployment);
    metrics.event(r, "fallback", anthropic.deployment);
    metrics.event(r, "degraded", undefined);
    const s = await samples(metrics);
    const skips = (deployment: string, reason: string) =>
      sampleValue(s, "sluice_deployment_skips_total", { alias: "chat", deployment, reason });
    expect(skips(openai.deployment, "breaker_open")).toBe(2);
    expect(skips(anthropic.deployment, "in_flight_limit")).toBe(1);
    expect(sampleValue(s, "sluice_retry_budget_exhausted_total", { alias: "chat", deployment: openai.deployment })).toBe(1);
    expect(sampleValue(s, "sluice_fallbacks_total", { alias: "chat" })).toBe(1);
    expect(sampleValue(s, "sluice_degraded_answers_total", { alias: "chat" })).toBe(1);
  });

  it("reads breaker states, limited deployments' in-flight counts and the retry budget at scrape time", async () => {
    let states: Record<string, string> = { [openai.deployment]: "open" };
    const metrics = metricsFor({
      breakerStates: () => states,
      inFlight: () => ({ [anthropic.deployment]: 3 }),
      retryBudget: () => ({ retries: 4, limit: 50 }),
    });
    let s = await samples(metrics);
    const state = (deployment: string, value: string) => sampleValue(s, "sluice_breaker_state", { deployment, state: value });
    expect([state(openai.deployment, "open"), state(openai.deployment, "closed"), state(openai.deployment, "half-open")]).toEqual(
      [1, 0, 0],
    );
    // No breaker yet: closed.
    expect([state(anthropic.deployment, "closed"), state(anthropic.deployment, "open")]).toEqual([1, 0]);
    expect(sampleValue(s, "sluice_deployment_in_flight", { deployment: anthropic.deployment })).toBe(3);
    expect(sampleValue(s, "sluice_retry_budget_window_retries")).toBe(4);
    expect(sampleValue(s, "sluice_retry_budget_window_limit")).toBe(50);

    states = { [openai.deployment]: "half-open" };
    s = await samples(metrics);
    expect([state(openai.deployment, "open"), state(openai.deployment, "half-open")]).toEqual([0, 1]);
  });

  it("each instance has its own registry (with process metrics), none in prom-client's global one", async () => {
    const first = metricsFor({ processMetrics: true });
    const second = metricsFor({ processMetrics: true });
    const r = record("grpc", false, 1);
    first.callStarted(r);
    first.callEnded(r, undefined);
    const labels = { rpc: "sluice.v1.ChatService/Complete", protocol: "grpc", code: "ok" };
    expect(sampleValue(await samples(first), "sluice_rpc_requests_total", labels)).toBe(1);
    expect(sampleValue(await samples(second), "sluice_rpc_requests_total", labels)).toBeUndefined();
    expect(familyNames(await second.exposition())).toContain("process_cpu_seconds_total");
    expect(familyNames(await second.exposition())).toContain("nodejs_eventloop_lag_seconds");
    expect(await globalRegistry.metrics()).not.toContain("sluice_");
    expect(first.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  it("escapes provider text in label values so the exposition stays parseable", async () => {
    const metrics = metricsFor();
    const r = record("grpc", false, 1);
    answered(r, openai, 'model "x"\\y\nz');
    metrics.callEnded(r, undefined);
    const s = await samples(metrics);
    expect(
      sampleValue(s, "sluice_upstream_model_answers_total", {
        alias: "chat",
        deployment: openai.deployment,
        response_model: 'model "x"\\y\nz',
      }),
    ).toBe(1);
  });
});
