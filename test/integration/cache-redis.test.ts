import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AdminService } from "../../gen/sluice/v1/admin_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CacheStatus, ChatService, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { completion, streamOf } from "../helpers/openai-wire.js";
import { connectJsonTransport, grpcH2Transport, type ProtocolTransport } from "../helpers/protocol-clients.js";
import { type RedisServer, redisMissing, startRedis } from "../helpers/redis-server.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";

/**
 * Issue 16 across replicas: one real redis-server and two Sluice gateways (A and B, in this
 * process, each with its own Redis connections) with `state.redis` and `cache`, against one
 * counting fake upstream: hits shared, idempotency replay and refusal, a call in flight on A
 * joined from B, purge, tenant isolation.
 */

// Outside CI without redis-server: skipped (the note says why); under CI=true redisMissing throws: the file fails.
const missing = await redisMissing();
if (missing !== undefined) console.warn(missing);

const keys = {
  a: "sk-cache-redis-tenant-a-0123456789abcdef012345",
  b: "sk-cache-redis-tenant-b-0123456789abcdef012345",
  ops: "sk-cache-redis-ops-0123456789abcdef0123456789a",
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** Upstream answers: unary after `unaryDelayMs` (a call stays in flight that long). */
let unaryDelayMs = 50;

let redis: RedisServer;
let upstream: FakeUpstream;
let gatewayA: StartedSluice;
let gatewayB: StartedSluice;
let transports: ProtocolTransport[] = [];
let salt = 0;

const fresh = (extra: Record<string, unknown> = {}) => ({
  model: "chat",
  temperature: 0,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: `redis question ${++salt}` } }] }],
  ...extra,
});

const document = (redisUrl: string) => ({
  state: { redis: { url: redisUrl, keyPrefix: "sluice-cache-test:", timeoutMs: 1_000 } },
  providers: { up: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
  models: { chat: { deployments: [{ provider: "up", model: "m" }] } },
  tenants: {
    a: { apiKeys: [{ sha256: apiKeyHash(keys.a), id: "a" }], models: ["*"] },
    b: { apiKeys: [{ sha256: apiKeyHash(keys.b), id: "b" }], models: ["*"] },
    ops: { apiKeys: [{ sha256: apiKeyHash(keys.ops), id: "ops" }], models: ["*"], admin: true },
  },
  cache: { ttlSeconds: 300 },
});

describe.skipIf(missing !== undefined)("response cache and idempotency keys on Redis, two replicas", () => {
  let chatA: ReturnType<typeof createClient<typeof ChatService>>;
  let chatB: ReturnType<typeof createClient<typeof ChatService>>;
  let adminA: ReturnType<typeof createClient<typeof AdminService>>;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startFakeUpstream((req) =>
      req.bodyText.includes('"stream":true')
        ? { ...streamOf(["Hello", ", ", "world"]), delayBetweenChunksMs: 10 }
        : { ...completion("Hello, world"), delayBeforeHeadersMs: unaryDelayMs },
    );
    gatewayA = await startSluice(document(redis.url));
    gatewayB = await startSluice(document(redis.url));
    transports = [connectJsonTransport(gatewayA.url), grpcH2Transport(gatewayB.url)];
    chatA = createClient(ChatService, transports[0]!.transport);
    chatB = createClient(ChatService, transports[1]!.transport);
    adminA = createClient(AdminService, transports[0]!.transport);
  }, 30_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    await gatewayA?.close();
    await gatewayB?.close();
    await upstream?.close();
    await redis?.close();
  });

  let before = 0;
  beforeEach(() => {
    before = upstream.requests.length;
    unaryDelayMs = 50;
  });
  const upstreamCalls = () => upstream.requests.length - before;

  async function collect(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
    const all: StreamCompleteResponse[] = [];
    for await (const event of events) all.push(event);
    return all;
  }

  it("the backends are Redis", () => {
    expect(gatewayA.config.state.redis?.url).toBe(redis.url);
    expect(gatewayB.config.state.redis?.url).toBe(redis.url);
  });

  it("a miss on A is a hit on B, unary and streamed: one upstream call", async () => {
    const request = fresh();
    const first = await chatA.complete(request, { headers: bearer(keys.a) });
    expect(first.route?.cacheStatus).toBe(CacheStatus.MISS);
    // A sends its SET before it answers: B's GET, sent after, finds it (Redis serves commands in order of arrival).
    const headers: Headers[] = [];
    const again = await chatB.complete(request, { headers: bearer(keys.a), onHeader: (h) => headers.push(h) });
    expect(again.route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(headers[0]?.get("sluice-cache")).toBe("hit");
    expect(again.message?.content[0]?.part.value).toBe("Hello, world");
    expect(again.usage?.outputTokens).toBe(first.usage?.outputTokens);
    const events = await collect(chatB.streamComplete(request, { headers: bearer(keys.a) }));
    expect(events.map((e) => e.event.case)).toEqual(["start", "delta", "done"]);
    const done = events.at(-1)!.event;
    expect(done.case === "done" && done.value.route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(1);
  });

  it("a streamed miss on B is a unary hit on A", async () => {
    const request = fresh();
    const streamed = await collect(chatB.streamComplete(request, { headers: bearer(keys.a) }));
    expect(streamed.at(-1)!.event.case).toBe("done");
    await waitForHit(() => chatA.complete(request, { headers: bearer(keys.a) }));
    const hit = await chatA.complete(request, { headers: bearer(keys.a) });
    expect(hit.message?.content[0]?.part.value).toBe("Hello, world");
    expect(upstreamCalls()).toBe(1);
  });

  it("tenant isolation: tenant B never gets tenant A's entry from Redis", async () => {
    const request = fresh();
    expect((await chatA.complete(request, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chatB.complete(request, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chatA.complete(request, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect((await chatB.complete(request, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(2);
  });

  it("idempotency replay across replicas: the stored answer on B; another body is INVALID_ARGUMENT IDEMPOTENCY_KEY_REUSED", async () => {
    const request = fresh({ temperature: 0.9 });
    const idem = { ...bearer(keys.a), "idempotency-key": `redis-replay-${salt}` };
    const one = await chatA.complete(request, { headers: idem });
    expect(one.route?.cacheStatus).toBe(CacheStatus.MISS);
    const two = await chatB.complete(request, { headers: idem });
    expect(two.route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(two.id).toBe(one.id);
    expect(two.message?.content[0]?.part.value).toBe("Hello, world");
    const streamed = await collect(chatB.streamComplete(request, { headers: idem }));
    expect(streamed.at(-1)!.event.case).toBe("done");
    expect(upstreamCalls()).toBe(1);
    const err = await chatB.complete(fresh({ temperature: 0.9 }), { headers: idem }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    // The key is the tenant's: tenant B's same key is its own.
    const other = await chatB.complete(fresh({ temperature: 0.9 }), {
      headers: { ...bearer(keys.b), "idempotency-key": `redis-replay-${salt - 1}` },
    });
    expect(other.route?.cacheStatus).toBe(CacheStatus.MISS);
    expect(upstreamCalls()).toBe(2);
  });

  it("a call in flight on A is joined from B: B waits for A's answer, one upstream call", async () => {
    unaryDelayMs = 600;
    const request = fresh({ temperature: 0.9 });
    const idem = { ...bearer(keys.a), "idempotency-key": `redis-flight-${salt}` };
    const onA = chatA.complete(request, { headers: idem });
    await waitUntil(() => upstreamCalls() === 1);
    const started = Date.now();
    const onB = await chatB.complete(request, { headers: idem });
    const a = await onA;
    expect(Date.now() - started).toBeGreaterThan(200);
    expect(onB.id).toBe(a.id);
    expect(onB.message?.content[0]?.part.value).toBe("Hello, world");
    expect(a.route?.cacheStatus).toBe(CacheStatus.MISS);
    expect(onB.route?.cacheStatus).toBe(CacheStatus.HIT);
    // A streamed call with the key while A's is in flight waits too.
    const request2 = fresh({ temperature: 0.9 });
    const idem2 = { ...bearer(keys.a), "idempotency-key": `redis-flight-${salt}` };
    const onA2 = chatA.complete(request2, { headers: idem2 });
    await waitUntil(() => upstreamCalls() === 2);
    const streamed = await collect(chatB.streamComplete(request2, { headers: idem2 }));
    const a2 = await onA2;
    const start = streamed[0]!.event;
    expect(start.case === "start" && start.value.id).toBe(a2.id);
    expect(upstreamCalls()).toBe(2);
  });

  it("a failed call on A frees its key: B's retry runs upstream", async () => {
    const request = fresh({ temperature: 0.9 });
    const idem = { ...bearer(keys.a), "idempotency-key": `redis-failed-${salt}` };
    const controller = new AbortController();
    unaryDelayMs = 2_000;
    const onA = chatA.complete(request, { headers: idem, signal: controller.signal }).catch((e: unknown) => ConnectError.from(e));
    await waitUntil(() => upstreamCalls() === 1);
    controller.abort();
    expect(((await onA) as ConnectError).code).toBe(Code.Canceled);
    unaryDelayMs = 20;
    await waitUntil(async () => {
      const answer = await chatB.complete(request, { headers: idem, timeoutMs: 1_000 }).catch(() => undefined);
      return answer?.route?.cacheStatus === CacheStatus.MISS;
    });
    expect(upstreamCalls()).toBe(2);
  });

  it("purge on Redis: AdminService.PurgeCache on A removes the entries for both replicas", async () => {
    const forUser = fresh({ metadata: { end_user: "alice" } });
    const other = fresh();
    const keyed = fresh({ temperature: 0.9 });
    const idem = { ...bearer(keys.b), "idempotency-key": `redis-purge-${salt}` };
    await chatA.complete(forUser, { headers: bearer(keys.b) });
    await chatA.complete(other, { headers: bearer(keys.b) });
    await chatB.complete(keyed, { headers: idem });
    await chatA.complete(other, { headers: bearer(keys.a) });
    expect((await chatB.complete(forUser, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect((await chatB.complete(other, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(4);

    const denied = await adminA
      .purgeCache({ tenant: "b" }, { headers: bearer(keys.a) })
      .catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.PermissionDenied);

    const one = await adminA.purgeCache({ tenant: "b", endUser: "alice" }, { headers: bearer(keys.ops) });
    expect(one.cacheEntries).toBe(1n);
    expect((await chatB.complete(forUser, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chatB.complete(other, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(5);

    const all = await adminA.purgeCache({ tenant: "b" }, { headers: bearer(keys.ops) });
    expect(all.cacheEntries).toBeGreaterThanOrEqual(2n);
    expect(all.idempotencyRecords).toBeGreaterThanOrEqual(1n);
    expect((await chatB.complete(other, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chatA.complete(forUser, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    // The idempotency record is gone: the key runs again.
    expect((await chatA.complete(keyed, { headers: idem })).route?.cacheStatus).toBe(CacheStatus.MISS);
    // Tenant A's entry is untouched.
    expect((await chatB.complete(other, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(8);
  });
});

async function waitUntil(check: () => boolean | Promise<boolean>, withinMs = 5_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Cache writes are sent after the answer: a read right after may precede them on another connection. */
async function waitForHit(call: () => Promise<{ route?: { cacheStatus: CacheStatus } }>): Promise<void> {
  await waitUntil(async () => (await call()).route?.cacheStatus === CacheStatus.HIT);
}
