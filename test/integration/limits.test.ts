import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema, QuotaFailureSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { usageBuckets } from "../../src/state/usage-buckets.js";
import { connectJsonTransport, createGrpcJsClient, toConnectError } from "../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

const keys = {
  rpm: "sk-sluice-limits-rpm-0123456789abcdef0123456789",
  tpm: "sk-sluice-limits-tpm-0123456789abcdef0123456789",
  conc: "sk-sluice-limits-conc-0123456789abcdef012345678",
  budget: "sk-sluice-limits-budget-0123456789abcdef0123456",
  perKey: "sk-sluice-limits-perkey-0123456789abcdef0123456",
  other: "sk-sluice-limits-other-0123456789abcdef01234567",
  cut: "sk-sluice-limits-cut-0123456789abcdef0123456789",
};
const tenant = (key: string, id: string, extra: Record<string, unknown>) => ({
  apiKeys: [{ sha256: apiKeyHash(key), id }],
  models: ["*"],
  ...extra,
});
/** USD per million tokens: high, so a budget of a few dollars holds a handful of calls. */
const price = { inputPerMillion: 1_000, outputPerMillion: 1_000 };

const document = {
  providers: { fast: { type: "demo", wordDelayMs: 0 }, slow: { type: "demo", wordDelayMs: 40 } },
  models: {
    demo: { deployments: [{ provider: "fast", model: "sluice-demo-1", price }] },
    slow: { deployments: [{ provider: "slow", model: "sluice-demo-1", price }] },
    // A small window that falls back to a large one, and a small one with nowhere to go.
    small: { contextWindow: 400, fallbacks: ["large"], deployments: [{ provider: "fast", model: "small-1" }] },
    large: { contextWindow: 100_000, deployments: [{ provider: "fast", model: "large-1" }] },
    tiny: { contextWindow: 400, deployments: [{ provider: "fast", model: "tiny-1" }] },
  },
  tenants: {
    rpm: tenant(keys.rpm, "rpm-key", { limits: { requestsPerMinute: 3 } }),
    tpm: tenant(keys.tpm, "tpm-key", { limits: { tokensPerMinute: 2_000 } }),
    cut: tenant(keys.cut, "cut-key", { limits: { tokensPerMinute: 10_000 } }),
    conc: tenant(keys.conc, "conc-key", { limits: { concurrentRequests: 1 } }),
    budget: tenant(keys.budget, "budget-key", { budget: { usdPerDay: 1 } }),
    keyed: {
      apiKeys: [
        { sha256: apiKeyHash(keys.perKey), id: "limited", limits: { requestsPerMinute: 1 } },
        { sha256: apiKeyHash(keys.other), id: "free" },
      ],
      models: ["*"],
    },
  },
};

let gateway: StartedSluice;
beforeAll(async () => {
  gateway = await startSluice(document);
});
afterAll(() => gateway?.close());

const ask = (model: string, text = "hello", maxOutputTokens?: number) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: text } }] }],
  ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
});
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A Connect JSON unary call over HTTP/1.1: status, headers and body as a caller (or curl) sees them. */
async function postJson(key: string, body: unknown) {
  const response = await request(`${gateway.url}/sluice.v1.ChatService/Complete`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(key) },
    body: JSON.stringify(body),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    json: (await response.body.json()) as Record<string, unknown>,
  };
}

const jsonAsk = (model: string, text = "hello", maxOutputTokens?: number) => ({
  model,
  messages: [{ role: "ROLE_USER", content: [{ text }] }],
  ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
});

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to be refused");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

describe("requests per minute", () => {
  it("admits the limit, then RESOURCE_EXHAUSTED with QuotaFailure, RetryInfo, retry-after and x-ratelimit-* (HTTP 429)", async () => {
    for (let i = 0; i < 3; i++) {
      const ok = await postJson(keys.rpm, jsonAsk("demo"));
      expect(ok.status).toBe(200);
      expect(ok.headers["x-ratelimit-limit-requests"]).toBe("3");
      expect(ok.headers["x-ratelimit-remaining-requests"]).toBe(String(2 - i));
      expect(ok.headers["x-ratelimit-reset-requests"]).toMatch(/^\d+(ms|s)$/);
    }
    const refused = await postJson(keys.rpm, jsonAsk("demo"));
    expect(refused.status).toBe(429);
    expect(refused.json["code"]).toBe("resource_exhausted");
    expect(String(refused.json["message"])).toContain("tenants.rpm.limits.requestsPerMinute (3)");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect(refused.headers["x-ratelimit-remaining-requests"]).toBe("0");
    const types = (refused.json["details"] as { type: string }[]).map((d) => d.type);
    expect(types).toEqual(expect.arrayContaining(["google.rpc.ErrorInfo", "google.rpc.QuotaFailure", "google.rpc.RetryInfo"]));
  });

  it("over gRPC the same refusal carries the details: ErrorInfo RATE_LIMITED, QuotaFailure subject, RetryInfo", async () => {
    const client = createGrpcJsClient(gateway.url);
    try {
      const err = await client.unary(ChatService.method.complete, ask("demo"), { metadata: bearer(keys.rpm) }).then(
        () => undefined,
        (e: unknown) => toConnectError(e),
      );
      expect(err?.code).toBe(Code.ResourceExhausted);
      expect(err?.findDetails(ErrorInfoSchema)[0]).toMatchObject({
        reason: "RATE_LIMITED",
        metadata: { limit: "requests_per_minute" },
      });
      expect(err?.findDetails(QuotaFailureSchema)[0]?.violations[0]).toMatchObject({
        subject: "tenant:rpm",
        description: "requestsPerMinute: 3",
      });
      const delay = err?.findDetails(RetryInfoSchema)[0]?.retryDelay;
      expect(Number(delay?.seconds ?? 0n)).toBeGreaterThan(0);
    } finally {
      client.raw.close();
    }
  });

  it("a key's own limit applies to that key only; the tenant's other key is not held to it", async () => {
    expect((await postJson(keys.perKey, jsonAsk("demo"))).status).toBe(200);
    const refused = await postJson(keys.perKey, jsonAsk("demo"));
    expect(refused.status).toBe(429);
    expect(String(refused.json["message"])).toContain("key:keyed/limited");
    expect((await postJson(keys.other, jsonAsk("demo"))).status).toBe(200);
    expect((await postJson(keys.other, jsonAsk("demo"))).status).toBe(200);
  });
});

describe("tokens per minute", () => {
  it("charges the prompt estimate plus max output at admission, then settles to the provider's usage", async () => {
    const first = await postJson(keys.tpm, jsonAsk("demo", "hello", 500));
    expect(first.status).toBe(200);
    expect(first.headers["x-ratelimit-limit-tokens"]).toBe("2000");
    const reservedFirst = 2_000 - Number(first.headers["x-ratelimit-remaining-tokens"]);
    // The estimate: a few prompt tokens plus the 500 output tokens the call may use.
    expect(reservedFirst).toBeGreaterThan(500);
    expect(reservedFirst).toBeLessThan(530);
    const usage = (first.json["usage"] ?? {}) as { inputTokens?: number; outputTokens?: number };
    const used = (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0);
    expect(used).toBeGreaterThan(0);
    const second = await postJson(keys.tpm, jsonAsk("demo", "hello", 500));
    // The first call now counts what it used, not what it reserved.
    expect(2_000 - Number(second.headers["x-ratelimit-remaining-tokens"])).toBe(used + reservedFirst);
  });

  it("a stream its caller cancels is settled to its prompt and what it streamed, not to its reservation", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const controller = new AbortController();
    let streamed = 0;
    let reserved = 0;
    const stream = chat.streamComplete(ask("slow", "hello", 3_000), {
      headers: bearer(keys.cut),
      signal: controller.signal,
      onHeader: (header) => {
        reserved = 10_000 - Number(header.get("x-ratelimit-remaining-tokens"));
      },
    });
    try {
      for await (const event of stream) {
        if (event.event.case === "delta") streamed += event.event.value.text.length;
        if (streamed > 20) controller.abort();
      }
    } catch {
      // Cancelled by us.
    }
    expect(reserved).toBeGreaterThan(3_000);
    // The next call sees the cut stream charged far below its 3,000+ reserved tokens.
    let charged = reserved;
    for (let attempt = 0; attempt < 200 && charged >= reserved; attempt++) {
      const next = await postJson(keys.cut, jsonAsk("demo", "hello", 1));
      charged = 10_000 - Number(next.headers["x-ratelimit-remaining-tokens"]);
      if (charged >= reserved) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(charged).toBeLessThan(200);
  });

  it("one call larger than the whole limit is REQUEST_TOO_LARGE, without RetryInfo", async () => {
    const refused = await postJson(keys.tpm, jsonAsk("demo", "hello", 5_000));
    expect(refused.status).toBe(429);
    const details = refused.json["details"] as { type: string }[];
    expect(details.map((d) => d.type)).not.toContain("google.rpc.RetryInfo");
    expect(refused.headers["retry-after"]).toBeUndefined();
    expect(String(refused.json["message"])).toContain("tokensPerMinute (2000)");
  });
});

describe("concurrent requests", () => {
  it("a second call while a stream is open is CONCURRENCY_LIMITED; once the stream ends, a call is admitted", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const controller = new AbortController();
    const stream = chat.streamComplete(ask("slow"), { headers: bearer(keys.conc), signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.event.case).toBe("start");
    const refused = await failure(chat.complete(ask("demo"), { headers: bearer(keys.conc) }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CONCURRENCY_LIMITED");
    expect(refused.findDetails(RetryInfoSchema)).toHaveLength(1);
    // The caller leaves mid-stream: its slot is released when the call ends.
    controller.abort();
    await iterator.next().catch(() => undefined);
    // The server sees the reset a moment later: bounded retries until the slot is free.
    let admitted = false;
    for (let attempt = 0; attempt < 200 && !admitted; attempt++) {
      admitted = await chat.complete(ask("demo"), { headers: bearer(keys.conc) }).then(
        () => true,
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 10));
          return false;
        },
      );
    }
    expect(admitted, "the slot of the cancelled stream is released").toBe(true);
  });
});

describe("budgets", () => {
  it("concurrent first calls cannot overspend: reservations stop admission before the budget is passed", async () => {
    // Each call reserves (prompt + 200 output tokens) × $1,000 per million ≈ $0.21 of the $1 day budget;
    // 12 slow streams are all in progress at once, so only reservations can hold them back.
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, async () => {
        try {
          let done = false;
          for await (const event of chat.streamComplete(ask("slow", "hello", 200), { headers: bearer(keys.budget) })) {
            if (event.event.case === "done") done = true;
          }
          return done ? "served" : "incomplete";
        } catch (err) {
          return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.reason ?? "other";
        }
      }),
    );
    const served = outcomes.filter((outcome) => outcome === "served").length;
    expect(served).toBeGreaterThanOrEqual(1);
    expect(served).toBeLessThanOrEqual(4);
    expect(outcomes.filter((outcome) => outcome === "BUDGET_EXHAUSTED")).toHaveLength(12 - served);
    const rows = await gateway.sluice.state.usage({ tenant: "budget", period: "day", bucket: usageBuckets(Date.now()).day });
    const spent = rows.reduce((sum, row) => sum + row.costMicroUsd, 0);
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(1_000_000);
  });

  it("an exhausted budget refuses with BUDGET_EXHAUSTED and a RetryInfo until the UTC day turns", async () => {
    // Spend what is left, then one more is refused.
    let refused: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let i = 0; i < 20 && refused === undefined; i++) {
      const answer = await postJson(keys.budget, jsonAsk("demo", "hello", 200));
      if (answer.status === 429) refused = answer;
    }
    expect(refused?.json["code"]).toBe("resource_exhausted");
    expect(String(refused?.json["message"])).toContain("tenants.budget.budget.usdPerDay (1)");
    const untilMidnight =
      (Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) - Date.now()) / 1000;
    expect(Number(refused?.headers["retry-after"])).toBeGreaterThan(untilMidnight - 5);
    expect(Number(refused?.headers["retry-after"])).toBeLessThanOrEqual(Math.ceil(untilMidnight) + 1);
  });
});

describe("context window", () => {
  // ~1,000 tokens: far beyond the 360 (400 less the 10% margin) the small windows hold.
  const long = "lorem ipsum dolor sit amet ".repeat(150);

  it("a prompt that does not fit is refused before any upstream call: INVALID_ARGUMENT, CONTEXT_LENGTH_EXCEEDED", async () => {
    const refused = await postJson(keys.other, jsonAsk("tiny", long, 50));
    expect(refused.status).toBe(400);
    expect(refused.json["code"]).toBe("invalid_argument");
    expect(String(refused.json["message"])).toContain("context window");
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const err = await failure(chat.complete(ask("tiny", long, 50), { headers: bearer(keys.other) }));
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CONTEXT_LENGTH_EXCEEDED");
  });

  it("routes to a fallback whose window holds it; a short prompt stays on the requested model", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const routed = await chat.complete(ask("small", long, 50), { headers: bearer(keys.other) });
    expect(routed.route?.fallbackModel).toBe("large");
    expect(routed.route?.upstreamModel).toBe("large-1");
    const direct = await chat.complete(ask("small", "hello", 50), { headers: bearer(keys.other) });
    expect(direct.route?.fallbackModel).toBe("");
    expect(direct.route?.upstreamModel).toBe("small-1");
  });
});

describe("usage and metrics", () => {
  it("every finished call is in the usage ledger, and refusals are counted by tenant and limit", async () => {
    const today = usageBuckets(Date.now()).day;
    const rows = await gateway.sluice.state.usage({ tenant: "rpm", period: "day", bucket: today });
    expect(rows).toEqual([
      expect.objectContaining({ tenant: "rpm", keyId: "rpm-key", alias: "demo", deployment: "fast/sluice-demo-1", requests: 3 }),
    ]);
    expect(rows[0]!.outputTokens).toBeGreaterThan(0);
    const exposition = await gateway.sluice.metrics.exposition();
    expect(exposition).toMatch(/sluice_limit_rejections_total\{tenant="rpm",limit="requests_per_minute"\} [1-9]/);
    expect(exposition).toMatch(
      /sluice_limit_rejections_total\{tenant="",limit="context_window"\} [1-9]|sluice_limit_rejections_total\{tenant="keyed",limit="context_window"\} [1-9]/,
    );
    expect(exposition).toMatch(/sluice_state_up\{backend="memory"\} 1/);
  });
});
