import { request } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";

/**
 * Issue 16 on the compatible routes over plain HTTP: `idempotency-key` and the
 * `x-sluice-cache*` headers on POST /v1/chat/completions and POST /v1/messages, the
 * `sluice-cache` answer header, and IDEMPOTENCY_KEY_REUSED as HTTP 422 invalid_request_error.
 */

const key = "sk-cache-compat-0123456789abcdef0123456789abcd";

let upstream: FakeUpstream;
let gateway: StartedSluice;
let salt = 0;

beforeAll(async () => {
  upstream = await startFakeUpstream((req) =>
    req.bodyText.includes('"stream":true') ? streamOf(["Hello", ", ", "world"]) : completion("Hello, world"),
  );
  gateway = await startSluice({
    providers: { up: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
    models: { chat: { deployments: [{ provider: "up", model: "m" }] } },
    tenants: { t: { apiKeys: [{ sha256: apiKeyHash(key), id: "t" }], models: ["*"] } },
    cache: { ttlSeconds: 300 },
  });
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

let before = 0;
beforeEach(() => {
  before = upstream.requests.length;
});
const upstreamCalls = () => upstream.requests.length - before;

type Lane = "openai" | "anthropic";
const lanes: Lane[] = ["openai", "anthropic"];

function body(lane: Lane, text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return lane === "openai"
    ? { model: "chat", messages: [{ role: "user", content: text }], ...extra }
    : { model: "chat", max_tokens: 100, messages: [{ role: "user", content: text }], ...extra };
}

async function post(lane: Lane, payload: Record<string, unknown>, headers: Record<string, string> = {}) {
  const path = lane === "openai" ? "/v1/chat/completions" : "/v1/messages";
  const auth: Record<string, string> =
    lane === "openai" ? { authorization: `Bearer ${key}` } : { "x-api-key": key, "anthropic-version": "2023-06-01" };
  const response = await request(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth, ...headers },
    body: JSON.stringify(payload),
  });
  const text = await response.body.text();
  return { status: response.statusCode, cache: response.headers["sluice-cache"], text, json: () => JSON.parse(text) };
}

describe.each(lanes)("%s-compatible route", (lane) => {
  it("a deterministic request is a miss then a hit (unary and streamed); x-sluice-cache: bypass / no-store / on", async () => {
    const question = `compat ${lane} ${++salt}`;
    const first = await post(lane, body(lane, question, { temperature: 0 }));
    expect(first.status, first.text).toBe(200);
    expect(first.cache).toBe("miss");
    const second = await post(lane, body(lane, question, { temperature: 0 }));
    expect(second.cache).toBe("hit");
    expect(second.text).toContain("Hello, world");
    const streamed = await post(lane, body(lane, question, { temperature: 0, stream: true }));
    expect(streamed.status).toBe(200);
    expect(streamed.cache).toBe("hit");
    expect(streamed.text).toContain("Hello");
    expect(upstreamCalls()).toBe(1);

    const bypass = await post(lane, body(lane, question, { temperature: 0 }), { "x-sluice-cache": "bypass" });
    expect(bypass.cache).toBe("bypass");
    expect(upstreamCalls()).toBe(2);

    const other = `compat ${lane} ${++salt}`;
    await post(lane, body(lane, other, { temperature: 0 }), { "x-sluice-cache": "no-store" });
    expect((await post(lane, body(lane, other, { temperature: 0 }))).cache).toBe("miss");
    expect(upstreamCalls()).toBe(4);

    const optIn = `compat ${lane} ${++salt}`;
    expect((await post(lane, body(lane, optIn, { temperature: 0.8 }), { "x-sluice-cache": "on" })).cache).toBe("miss");
    expect((await post(lane, body(lane, optIn, { temperature: 0.8 }), { "x-sluice-cache": "on" })).cache).toBe("hit");
    expect((await post(lane, body(lane, optIn, { temperature: 0.8 }))).cache).toBeUndefined();
    expect(upstreamCalls()).toBe(6);
  });

  it("x-sluice-cache-max-age: an entry older than the max age is a miss", async () => {
    const question = `compat ${lane} ${++salt}`;
    await post(lane, body(lane, question, { temperature: 0 }));
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const stale = await post(lane, body(lane, question, { temperature: 0 }), { "x-sluice-cache-max-age": "1" });
    expect(stale.cache).toBe("miss");
    expect(upstreamCalls()).toBe(2);
  });

  it("idempotency-key: a repeat returns the stored answer; another body is 422 invalid_request_error", async () => {
    const idem = { "idempotency-key": `compat-${lane}-${++salt}` };
    const question = `compat ${lane} ${salt}`;
    const one = await post(lane, body(lane, question, { temperature: 0.9 }), idem);
    expect(one.status).toBe(200);
    expect(one.cache).toBe("miss");
    const two = await post(lane, body(lane, question, { temperature: 0.9 }), idem);
    expect(two.status).toBe(200);
    expect(two.cache).toBe("hit");
    expect(upstreamCalls()).toBe(1);
    const reused = await post(lane, body(lane, `${question} changed`, { temperature: 0.9 }), idem);
    expect(reused.status, reused.text).toBe(422);
    const error = reused.json() as { type?: string; error: { type: string; message: string; code?: string } };
    expect(error.error.type).toBe("invalid_request_error");
    expect(error.error.message).toMatch(/idempotency key/);
    if (lane === "openai") expect(error.error.code).toBe("idempotency_key_reused");
    else expect(error.type).toBe("error");
    expect(upstreamCalls()).toBe(1);
  });
});
