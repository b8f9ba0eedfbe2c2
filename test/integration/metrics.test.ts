import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { createChatCaller, type CompleteRequestInit } from "../helpers/chat-callers.js";
import {
  jsonResponse,
  sseResponse,
  startFakeUpstream,
  type FakeUpstream,
  type ScriptedResponse,
} from "../helpers/fake-upstream.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { parseExposition, sampleValue, type Sample } from "../helpers/metrics-exposition.js";
import { deployExprs, deployFiles, labelNames, metricNames, withDashboardVariables } from "../helpers/metrics-deploy.js";
import {
  prometheusPath,
  promtoolPath,
  requireTool,
  runTool,
  startPrometheus,
  type PrometheusServer,
} from "../helpers/prometheus-server.js";

// Known traffic through a real gateway in front of a fake OpenAI, then its /metrics read
// three ways: exact values from the exposition, `promtool check metrics` on it, and a real
// Prometheus server scraping it (with deploy/prometheus/alerts.yml loaded).

const complete = "sluice.v1.ChatService/Complete";
const streamComplete = "sluice.v1.ChatService/StreamComplete";
/** The model the fake provider reports answering with (a dated version of the one asked for). */
const reportedModel = "good-model-2026-01-01";
const usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };

function goodAnswer(stream: boolean): ScriptedResponse {
  if (!stream) {
    return jsonResponse(200, {
      id: "chatcmpl-m",
      object: "chat.completion",
      created: 1,
      model: reportedModel,
      choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
      usage,
    });
  }
  const chunk = (body: object) =>
    `data: ${JSON.stringify({ id: "chatcmpl-s", object: "chat.completion.chunk", created: 1, model: reportedModel, ...body })}\n\n`;
  return sseResponse([
    chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }),
    chunk({ choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }] }),
    chunk({ choices: [{ index: 0, delta: { content: "lo" }, finish_reason: null }] }),
    chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }),
    chunk({ choices: [], usage }),
    "data: [DONE]\n\n",
  ]);
}

const serverError = jsonResponse(500, { error: { message: "boom", type: "server_error", param: null, code: null } });

let upstream: FakeUpstream;
let gateway: StartedSluice;
let exposition: string;
let samples: Sample[];

const ask = (model: string): CompleteRequestInit => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
});

beforeAll(async () => {
  upstream = await startFakeUpstream((request) => {
    const body = request.body as { model?: string; stream?: boolean };
    return body.model === "good-model" ? goodAnswer(body.stream === true) : serverError;
  });
  const provider = "oai";
  gateway = await startSluice({
    providers: { [provider]: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "sk-metrics-test" } },
    models: {
      chat: {
        deployments: [{ provider, model: "good-model", maxInFlight: 10, price: { inputPerMillion: 1, outputPerMillion: 2 } }],
        retry: { maxAttempts: 1 },
      },
      // Fails, wants a retry the budget refuses, falls back to chat.
      flaky: { deployments: [{ provider, model: "bad-model" }], retry: { maxAttempts: 2 }, fallbacks: ["chat"] },
      // Its deployment's breaker is open by then (flaky's failure opened it): skipped, degraded answer.
      broken: { deployments: [{ provider, model: "bad-model" }], retry: { maxAttempts: 1 }, degraded: { message: "later" } },
    },
    resilience: {
      // Every retry refused, every failure opens the deployment's breaker: each event happens exactly once below.
      retryBudget: { ratio: 0, minRetriesPerSecond: 0 },
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 50 },
    },
  });

  const connect = createChatCaller("connect-json-h1", gateway.url);
  const grpc = createChatCaller("grpc-js-h2c", gateway.url);
  try {
    for (let i = 0; i < 3; i++) await connect.complete(ask("chat"));
    for (let i = 0; i < 2; i++) {
      const { error } = await grpc.stream(ask("chat"));
      expect(error).toBeUndefined();
    }
    expect((await connect.complete(ask("flaky"))).route?.fallbackModel).toBe("chat");
    expect((await connect.complete(ask("broken"))).route?.degraded).toBe(true);
    expect((await connect.completeError(ask("no-such-model"))).code).toBe(Code.NotFound);
  } finally {
    connect.close();
    grpc.close();
  }
  const response = await fetch(`${gateway.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  exposition = await response.text();
  samples = parseExposition(exposition);
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const good = { alias: "chat", provider: "oai", deployment: "oai/good-model" };

describe("GET /metrics after known traffic", () => {
  it("counts RPCs by RPC, protocol and code, and none is left in flight", () => {
    expect(sampleValue(samples, "sluice_rpc_requests_total", { rpc: complete, protocol: "connect", code: "ok" })).toBe(5);
    expect(sampleValue(samples, "sluice_rpc_requests_total", { rpc: complete, protocol: "connect", code: "not_found" })).toBe(1);
    expect(sampleValue(samples, "sluice_rpc_requests_total", { rpc: streamComplete, protocol: "grpc", code: "ok" })).toBe(2);
    const inFlight = samples.filter((s) => s.name === "sluice_rpc_in_flight");
    expect(inFlight.length).toBeGreaterThan(0);
    expect(inFlight.every((s) => s.value === 0)).toBe(true);
  });

  it("chat calls by alias, answering deployment, code and stream; a caller's unknown alias is no label", () => {
    const count = (labels: Record<string, string>) =>
      sampleValue(samples, "gen_ai_server_request_duration_seconds_count", { code: "ok", ...labels });
    expect(count({ ...good, stream: "false" })).toBe(3);
    expect(count({ ...good, stream: "true" })).toBe(2);
    expect(count({ alias: "flaky", provider: "oai", deployment: "oai/good-model", stream: "false" })).toBe(1);
    expect(count({ alias: "broken", provider: "", deployment: "", stream: "false" })).toBe(1);
    expect(exposition).not.toContain("no-such-model");
  });

  it("time to first token for the two streams; time per output token; tokens and cost as reported and priced", () => {
    expect(sampleValue(samples, "gen_ai_server_time_to_first_token_seconds_count", good)).toBe(2);
    expect(sampleValue(samples, "gen_ai_server_time_per_output_token_seconds_count", good)).toBe(2);
    expect(sampleValue(samples, "gen_ai_client_token_usage_sum", { ...good, token_type: "input" })).toBe(5 * 11);
    expect(sampleValue(samples, "gen_ai_client_token_usage_sum", { ...good, token_type: "output" })).toBe(5 * 7);
    expect(sampleValue(samples, "gen_ai_client_token_usage_count", { ...good, token_type: "output" })).toBe(5);
    // 11 input tokens at $1/M + 7 output at $2/M, five calls (the fallback's under its own alias).
    expect(sampleValue(samples, "sluice_cost_usd_total", good)).toBeCloseTo((5 * 25) / 1e6, 15);
    expect(sampleValue(samples, "sluice_cost_usd_total", { ...good, alias: "flaky" })).toBeCloseTo(25 / 1e6, 15);
    expect(sampleValue(samples, "sluice_gateway_added_duration_seconds_count", { alias: "chat", stream: "false" })).toBe(3);
  });

  it("the model the provider reported, per alias and deployment", () => {
    const answers = (alias: string) =>
      sampleValue(samples, "sluice_upstream_model_answers_total", {
        alias,
        deployment: "oai/good-model",
        response_model: reportedModel,
      });
    expect([answers("chat"), answers("flaky")]).toEqual([5, 1]);
  });

  it("upstream attempts by deployment and outcome, the failure by its reason", () => {
    const attempts = (deployment: string, outcome: string, errorType: string) =>
      sampleValue(samples, "sluice_upstream_attempts_total", { provider: "oai", deployment, outcome, error_type: errorType });
    expect(attempts("oai/good-model", "ok", "")).toBe(6);
    expect(attempts("oai/bad-model", "error", "UPSTREAM_UNAVAILABLE")).toBe(1);
    expect(
      sampleValue(samples, "gen_ai_client_operation_duration_seconds_count", {
        provider: "oai",
        deployment: "oai/bad-model",
        outcome: "error",
      }),
    ).toBe(1);
  });

  it("the refused retry, the fallback, the open breaker's skip and the degraded answer", () => {
    expect(sampleValue(samples, "sluice_retry_budget_exhausted_total", { alias: "flaky", deployment: "oai/bad-model" })).toBe(1);
    expect(sampleValue(samples, "sluice_fallbacks_total", { alias: "flaky" })).toBe(1);
    expect(
      sampleValue(samples, "sluice_deployment_skips_total", {
        alias: "broken",
        deployment: "oai/bad-model",
        reason: "breaker_open",
      }),
    ).toBe(1);
    expect(sampleValue(samples, "sluice_degraded_answers_total", { alias: "broken" })).toBe(1);
    expect(sampleValue(samples, "sluice_breaker_state", { deployment: "oai/bad-model", state: "open" })).toBe(1);
    expect(sampleValue(samples, "sluice_breaker_state", { deployment: "oai/good-model", state: "closed" })).toBe(1);
    // Budget window: no retry granted, none allowed (ratio 0, no floor).
    expect(sampleValue(samples, "sluice_retry_budget_window_retries")).toBe(0);
    expect(sampleValue(samples, "sluice_retry_budget_window_limit")).toBe(0);
  });

  it("deploy/'s alert rules and dashboard use only metrics and labels the exposition has", () => {
    const labelsOf = new Map<string, Set<string>>();
    for (const sample of samples) {
      const labels = labelsOf.get(sample.name) ?? new Set<string>();
      for (const name of Object.keys(sample.labels)) labels.add(name);
      labelsOf.set(sample.name, labels);
    }
    const problems: string[] = [];
    for (const { where, expr } of deployExprs()) {
      const names = metricNames(expr);
      for (const name of names) if (!labelsOf.has(name)) problems.push(`${where}: no samples of ${name}`);
      const { selected, groupedBy } = labelNames(expr);
      for (const [name, labels] of selected) {
        for (const label of labels) {
          if (label !== "job" && labelsOf.has(name) && !labelsOf.get(name)!.has(label))
            problems.push(`${where}: ${name} has no label ${label}`);
        }
      }
      for (const label of groupedBy) {
        const known = label === "job" || label === "instance" || names.some((name) => labelsOf.get(name)?.has(label));
        if (!known) problems.push(`${where}: grouped by ${label}, which none of ${names.join(", ")} has`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("passes promtool check metrics", async (ctx) => {
    const promtool = await requireTool(promtoolPath, (note) => ctx.skip(note));
    const result = await runTool(promtool, ["check", "metrics"], { input: exposition });
    expect(result.stderr + result.stdout).toBe("");
    expect(result.code).toBe(0);
  });
});

describe("a real Prometheus scraping Sluice", () => {
  let prometheus: PrometheusServer | undefined;
  afterAll(async () => {
    await prometheus?.close();
  });

  it("ingests the metrics: the same counts through PromQL, and the breaker alert pending", async (ctx) => {
    const binary = await requireTool(prometheusPath, (note) => ctx.skip(note));
    prometheus = await startPrometheus(binary, { targets: [`127.0.0.1:${gateway.port}`], ruleFiles: [deployFiles.alerts] });
    await prometheus.queryUntil('up{job="sluice"}', (r) => r.length === 1 && r[0]!.value === 1);

    const value = async (expr: string) => (await prometheus!.query(expr)).map((s) => s.value);
    expect(await value('sum(sluice_rpc_requests_total{code="ok"})')).toEqual([7]);
    expect(await value('sum by (alias) (gen_ai_server_time_to_first_token_seconds_count{alias="chat"})')).toEqual([2]);
    expect(await value('sum(gen_ai_client_token_usage_sum{token_type="output"})')).toEqual([6 * 7]);
    expect(await value(`sluice_upstream_model_answers_total{alias="chat",response_model="${reportedModel}"}`)).toEqual([5]);
    // A quantile PromQL can compute from the buckets: the streams' TTFT is under the largest bound.
    const [p95] = await value("histogram_quantile(0.95, sum by (le) (gen_ai_server_time_to_first_token_seconds_bucket))");
    expect(p95).toBeGreaterThan(0);
    expect(p95).toBeLessThan(120);

    // Every query of deploy/ is valid PromQL over the real series.
    for (const { where, expr } of deployExprs()) {
      await expect(prometheus.query(withDashboardVariables(expr)), where).resolves.toBeDefined();
    }

    // alerts.yml is loaded and its breaker rule matches the real series: pending (it has a `for`).
    const alerts = await prometheus.queryUntil('ALERTS{alertname="SluiceCircuitBreakerOpen"}', (r) => r.length > 0);
    expect(alerts.map((a) => [a.metric["deployment"], a.metric["alertstate"]])).toEqual([["oai/bad-model", "pending"]]);
  });
});
