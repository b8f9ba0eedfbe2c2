import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, type UsageRow } from "../../gen/sluice/v1/admin_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CacheStatus, ChatService, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import { connectJsonTransport, grpcH2Transport, type ProtocolTransport } from "../helpers/protocol-clients.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";

/**
 * Issue 16, billing of a shared upstream call: the first caller of a coalesced flight
 * cancels while the others finish; the upstream call's usage and cost are still recorded
 * once, in full — in the usage ledger (one row for the deployment, "cache" rows at no cost
 * for the others) and in the tenant's token window (settled with what the provider reported).
 */

const keys = {
  payer: "sk-cache-billing-payer-0123456789abcdef012345",
  ops: "sk-cache-billing-ops-0123456789abcdef01234567",
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const price = { inputPerMillion: 1_000, outputPerMillion: 2_000 };

let upstream: FakeUpstream;
let gateway: StartedSluice;
let transports: ProtocolTransport[] = [];
let salt = 0;

const fresh = (extra: Record<string, unknown> = {}) => ({
  model: "chat",
  temperature: 0,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: `billing question ${++salt}` } }] }],
  ...extra,
});

beforeAll(async () => {
  upstream = await startFakeUpstream((req) =>
    req.bodyText.includes('"stream":true')
      ? { ...streamOf(["Hello", ", ", "world"]), delayBetweenChunksMs: 150 }
      : { ...completion("Hello, world"), delayBeforeHeadersMs: 400 },
  );
  gateway = await startSluice({
    providers: { up: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
    models: { chat: { deployments: [{ provider: "up", model: "m", price }] } },
    tenants: {
      payer: {
        apiKeys: [{ sha256: apiKeyHash(keys.payer), id: "payer" }],
        models: ["*"],
        limits: { tokensPerMinute: 1_000_000 },
        budget: { usdPerDay: 1_000 },
      },
      ops: { apiKeys: [{ sha256: apiKeyHash(keys.ops), id: "ops" }], models: ["*"], admin: true },
    },
    cache: { ttlSeconds: 300 },
  });
  transports = [connectJsonTransport(gateway.url), grpcH2Transport(gateway.url)];
});

afterAll(async () => {
  for (const t of transports) t.close();
  await gateway?.close();
  await upstream?.close();
});

const chat = () => createClient(ChatService, transports[1]!.transport);
const admin = () => createClient(AdminService, transports[0]!.transport);

async function ledger(): Promise<UsageRow[]> {
  return (await admin().getUsage({ tenant: "payer" }, { headers: bearer(keys.ops) })).rows;
}

/** The rows' sums per deployment. */
function byDeployment(rows: readonly UsageRow[]): Map<string, { requests: number; input: number; output: number; cost: number }> {
  const sums = new Map<string, { requests: number; input: number; output: number; cost: number }>();
  for (const row of rows) {
    const sum = sums.get(row.deployment) ?? { requests: 0, input: 0, output: 0, cost: 0 };
    sum.requests += Number(row.requests);
    sum.input += Number(row.inputTokens);
    sum.output += Number(row.outputTokens);
    sum.cost += row.costUsd;
    sums.set(row.deployment, sum);
  }
  return sums;
}

/** What the ledger gained between two readings, per deployment. */
function gained(before: readonly UsageRow[], after: readonly UsageRow[]) {
  const a = byDeployment(before);
  const b = byDeployment(after);
  const delta = new Map<string, { requests: number; input: number; output: number; cost: number }>();
  for (const [deployment, sum] of b) {
    const was = a.get(deployment) ?? { requests: 0, input: 0, output: 0, cost: 0 };
    delta.set(deployment, {
      requests: sum.requests - was.requests,
      input: sum.input - was.input,
      output: sum.output - was.output,
      cost: Number((sum.cost - was.cost).toFixed(9)),
    });
  }
  return delta;
}

/** The tokens left in the tenant's minute window, as a non-cached probe call's `x-ratelimit-remaining-tokens` says. */
async function remainingTokens(): Promise<number> {
  const headers: Headers[] = [];
  await chat().complete(
    { ...fresh({ temperature: 0.5 }), messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "probe" } }] }] },
    { headers: bearer(keys.payer), onHeader: (h) => headers.push(h) },
  );
  return Number(headers[0]?.get("x-ratelimit-remaining-tokens"));
}

async function waitUntil(check: () => boolean | Promise<boolean>, withinMs = 5_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function collect(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
  const all: StreamCompleteResponse[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describe("a coalesced call whose first caller cancels", () => {
  it("unary: the upstream call's usage and cost are recorded once, in full, and settled against the tenant's limits", async () => {
    const probe1 = await remainingTokens();
    const before = await ledger();
    const seen = upstream.requests.length;
    const request = fresh();
    const first = new AbortController();
    const cancelled = chat()
      .complete(request, { headers: bearer(keys.payer), signal: first.signal })
      .catch((e: unknown) => ConnectError.from(e));
    await waitUntil(() => upstream.requests.length === seen + 1);
    const others = [
      chat().complete(request, { headers: bearer(keys.payer) }),
      chat().complete(request, { headers: bearer(keys.payer) }),
    ];
    await new Promise((resolve) => setTimeout(resolve, 50));
    first.abort();
    expect(((await cancelled) as ConnectError).code).toBe(Code.Canceled);
    for (const answer of await Promise.all(others)) {
      expect(answer.route?.cacheStatus).toBe(CacheStatus.COALESCED);
      expect(answer.message?.content[0]?.part.value).toBe("Hello, world");
    }
    expect(upstream.requests.length).toBe(seen + 1);
    // The upstream answer: 3 prompt tokens, 2 completion tokens.
    await waitUntil(async () => (gained(before, await ledger()).get("up/m")?.output ?? 0) > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const delta = gained(before, await ledger());
    expect(delta.get("up/m")).toEqual({ requests: 1, input: 3, output: 2, cost: (3 * 1_000 + 2 * 2_000) / 1e6 });
    expect(delta.get("cache")).toEqual({ requests: 2, input: 0, output: 0, cost: 0 });
    // The minute window: the probe's 5 tokens and the shared call's 5, nothing more, nothing less.
    expect(probe1 - (await remainingTokens())).toBe(5 + 5);
  });

  it("streamed: the upstream call's reported usage is recorded once, not the first caller's partial stream", async () => {
    const before = await ledger();
    const seen = upstream.requests.length;
    const request = fresh();
    const first = new AbortController();
    const cancelled = (async () => {
      for await (const event of chat().streamComplete(request, { headers: bearer(keys.payer), signal: first.signal })) {
        if (event.event.case === "delta") first.abort();
      }
    })().catch((e: unknown) => ConnectError.from(e).code);
    await waitUntil(() => upstream.requests.length === seen + 1);
    const others = [1, 2].map(() => collect(chat().streamComplete(request, { headers: bearer(keys.payer) })));
    expect(await cancelled).toBe(Code.Canceled);
    for (const events of await Promise.all(others)) {
      const done = events.at(-1)!.event;
      expect(done.case === "done" && done.value.route?.cacheStatus).toBe(CacheStatus.COALESCED);
    }
    expect(upstream.requests.length).toBe(seen + 1);
    await waitUntil(async () => (gained(before, await ledger()).get("up/m")?.requests ?? 0) > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const delta = gained(before, await ledger());
    // streamOf(3 texts): 3 prompt tokens, 3 completion tokens.
    expect(delta.get("up/m")).toEqual({ requests: 1, input: 3, output: 3, cost: (3 * 1_000 + 3 * 2_000) / 1e6 });
    expect(delta.get("cache")).toEqual({ requests: 2, input: 0, output: 0, cost: 0 });
  });
});
