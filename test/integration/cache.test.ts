import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/sluice/v1/admin_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CacheStatus, ChatService, type StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.js";
import { completion, error500, streamOf } from "../helpers/openai-wire.js";
import { connectJsonTransport, grpcH2Transport, grpcWebTransport, type ProtocolTransport } from "../helpers/protocol-clients.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";

/** Issue 16: the response cache, coalescing and idempotency keys over real sockets, against a counting fake upstream. */

const keys = {
  a: "sk-cache-tenant-a-0123456789abcdef0123456789ab",
  b: "sk-cache-tenant-b-0123456789abcdef0123456789ab",
  ops: "sk-cache-ops-0123456789abcdef0123456789abcdef",
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

let upstream: FakeUpstream;
let gateway: StartedSluice;
let transports: ProtocolTransport[];
let salt = 0;

/** A deterministic request no earlier test sent. */
const fresh = (extra: Record<string, unknown> = {}) => ({
  model: "chat",
  temperature: 0,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: `question ${++salt}` } }] }],
  ...extra,
});

beforeAll(async () => {
  upstream = await startFakeUpstream((req) =>
    req.bodyText.includes('"stream":true')
      ? { ...streamOf(["Hello", ", ", "world"]), delayBetweenChunksMs: 20 }
      : { ...completion("Hello, world"), delayBeforeHeadersMs: 50 },
  );
  gateway = await startSluice({
    providers: { up: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
    models: { chat: { deployments: [{ provider: "up", model: "m" }] } },
    tenants: {
      a: { apiKeys: [{ sha256: apiKeyHash(keys.a), id: "a" }], models: ["*"] },
      b: { apiKeys: [{ sha256: apiKeyHash(keys.b), id: "b" }], models: ["*"] },
      ops: { apiKeys: [{ sha256: apiKeyHash(keys.ops), id: "ops" }], models: ["*"], admin: true },
    },
    cache: { ttlSeconds: 300 },
  });
  transports = [connectJsonTransport(gateway.url), grpcH2Transport(gateway.url), grpcWebTransport(gateway.url)];
});

afterAll(async () => {
  for (const t of transports ?? []) t.close();
  await gateway?.close();
  await upstream?.close();
});

let before = 0;
beforeEach(() => {
  before = upstream.requests.length;
});
const upstreamCalls = () => upstream.requests.length - before;

const chatOf = (t: ProtocolTransport) => createClient(ChatService, t.transport);

async function collect(events: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
  const all: StreamCompleteResponse[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describe("response cache", () => {
  it("a deterministic request is a miss, then a hit on every protocol, unary and streamed", async () => {
    const request = fresh();
    const headers: Headers[] = [];
    const first = await chatOf(transports[0]!).complete(request, { headers: bearer(keys.a), onHeader: (h) => headers.push(h) });
    expect(first.route?.cacheStatus).toBe(CacheStatus.MISS);
    expect(headers[0]?.get("sluice-cache")).toBe("miss");
    for (const t of transports) {
      const seen: Headers[] = [];
      const again = await chatOf(t).complete(request, { headers: bearer(keys.a), onHeader: (h) => seen.push(h) });
      expect(again.route?.cacheStatus, t.protocol).toBe(CacheStatus.HIT);
      expect(seen[0]?.get("sluice-cache"), t.protocol).toBe("hit");
      expect(again.message?.content[0]?.part.value).toBe("Hello, world");
      expect(again.usage?.outputTokens).toBe(2);
      const events = await collect(chatOf(t).streamComplete(request, { headers: bearer(keys.a) }));
      const kinds = events.map((e) => e.event.case);
      expect(kinds[0]).toBe("start");
      expect(kinds.at(-1)).toBe("done");
      expect(kinds).toContain("delta");
      const done = events.at(-1)!.event;
      expect(done.case === "done" && done.value.route?.cacheStatus).toBe(CacheStatus.HIT);
    }
    expect(upstreamCalls()).toBe(1);
  });

  it("a streamed miss is stored and replayed as a stream of events", async () => {
    const request = fresh();
    const first = await collect(chatOf(transports[1]!).streamComplete(request, { headers: bearer(keys.a) }));
    expect(
      first
        .filter((e) => e.event.case === "delta")
        .map((e) => (e.event.value as { text: string }).text)
        .join(""),
    ).toBe("Hello, world");
    const replay = await collect(chatOf(transports[0]!).streamComplete(request, { headers: bearer(keys.a) }));
    expect(replay.map((e) => e.event.case)).toEqual(["start", "delta", "done"]);
    const unary = await chatOf(transports[0]!).complete(request, { headers: bearer(keys.a) });
    expect(unary.route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(unary.message?.content[0]?.part.value).toBe("Hello, world");
    expect(upstreamCalls()).toBe(1);
  });

  it("not deterministic: not cached; bypass and no-store; opting in", async () => {
    const chat = chatOf(transports[0]!);
    const warm = fresh({ temperature: 0.7 });
    const r1 = await chat.complete(warm, { headers: bearer(keys.a) });
    const r2 = await chat.complete(warm, { headers: bearer(keys.a) });
    expect(r1.route?.cacheStatus).toBe(CacheStatus.UNSPECIFIED);
    expect(r2.route?.cacheStatus).toBe(CacheStatus.UNSPECIFIED);
    expect(upstreamCalls()).toBe(2);
    const optIn = fresh({ temperature: 0.7, cache: { enabled: true } });
    await chat.complete(optIn, { headers: bearer(keys.a) });
    expect((await chat.complete(optIn, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    const noStore = fresh();
    await chat.complete(noStore, { headers: { ...bearer(keys.a), "x-sluice-cache": "no-store" } });
    expect((await chat.complete(noStore, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    const bypassed = await chat.complete({ ...noStore, cache: { bypass: true } }, { headers: bearer(keys.a) });
    expect(bypassed.route?.cacheStatus).toBe(CacheStatus.BYPASS);
    expect(upstreamCalls()).toBe(2 + 1 + 3);
  });

  it("tenant isolation: tenant B never gets tenant A's entry", async () => {
    const request = fresh();
    const chat = chatOf(transports[0]!);
    expect((await chat.complete(request, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chat.complete(request, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chat.complete(request, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(2);
  });

  it("100 concurrent identical requests make exactly one upstream call", async () => {
    const request = fresh();
    const chat = chatOf(transports[1]!);
    const answers = await Promise.all(Array.from({ length: 100 }, () => chat.complete(request, { headers: bearer(keys.a) })));
    expect(upstreamCalls()).toBe(1);
    const statuses = answers.map((a) => a.route?.cacheStatus);
    expect(statuses.filter((s) => s === CacheStatus.MISS)).toHaveLength(1);
    expect(statuses.filter((s) => s === CacheStatus.COALESCED || s === CacheStatus.HIT)).toHaveLength(99);
    for (const a of answers) expect(a.message?.content[0]?.part.value).toBe("Hello, world");
  });

  it("a coalesced stream delivers every event to every waiter; one cancelling does not stop the others", async () => {
    const request = fresh();
    const chat = chatOf(transports[1]!);
    const quitter = new AbortController();
    const quitting = (async () => {
      for await (const event of chat.streamComplete(request, { headers: bearer(keys.a), signal: quitter.signal })) {
        if (event.event.case === "delta") quitter.abort();
      }
    })().catch((err: unknown) => ConnectError.from(err).code);
    const streams = await Promise.all(
      Array.from({ length: 10 }, () => collect(chat.streamComplete(request, { headers: bearer(keys.a) }))),
    );
    expect(await quitting).toBe(Code.Canceled);
    for (const events of streams) {
      expect(
        events
          .filter((e) => e.event.case === "delta")
          .map((e) => (e.event.value as { text: string }).text)
          .join(""),
      ).toBe("Hello, world");
      expect(events.at(-1)!.event.case).toBe("done");
    }
    expect(upstreamCalls()).toBe(1);
  });

  it("every waiter cancelling aborts the upstream call", async () => {
    const request = fresh();
    upstream.respond(() => ({ ...streamOf(["a", "b", "c", "d", "e", "f"]), delayBetweenChunksMs: 200 }));
    try {
      const chat = chatOf(transports[1]!);
      const controllers = [new AbortController(), new AbortController()];
      const runs = controllers.map((c) =>
        collect(chat.streamComplete(request, { headers: bearer(keys.a), signal: c.signal })).catch((e: unknown) => e),
      );
      await new Promise((r) => setTimeout(r, 300));
      const aborted = upstream.nextAbort();
      for (const c of controllers) c.abort();
      await Promise.all(runs);
      await aborted;
      expect(upstreamCalls()).toBe(1);
    } finally {
      upstream.respond((req) =>
        req.bodyText.includes('"stream":true')
          ? { ...streamOf(["Hello", ", ", "world"]), delayBetweenChunksMs: 20 }
          : { ...completion("Hello, world"), delayBeforeHeadersMs: 50 },
      );
    }
  });

  it("a failure reaches every waiter (and is not cached)", async () => {
    const request = fresh();
    upstream.respond(() => ({ ...error500, delayBeforeHeadersMs: 50 }));
    try {
      const chat = chatOf(transports[0]!);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => chat.complete({ ...request, model: "chat" }, { headers: bearer(keys.a) })),
      );
      for (const r of results) expect(r.status).toBe("rejected");
    } finally {
      upstream.respond((req) =>
        req.bodyText.includes('"stream":true')
          ? { ...streamOf(["Hello", ", ", "world"]), delayBetweenChunksMs: 20 }
          : { ...completion("Hello, world"), delayBeforeHeadersMs: 50 },
      );
    }
    const after = await chatOf(transports[0]!).complete(request, { headers: bearer(keys.a) });
    expect(after.route?.cacheStatus).toBe(CacheStatus.MISS);
  });
});

describe("idempotency keys", () => {
  it("a repeat with the same key returns the stored answer; a different body is IDEMPOTENCY_KEY_REUSED", async () => {
    const chat = chatOf(transports[1]!);
    const request = fresh({ temperature: 0.9 });
    const key = { ...bearer(keys.a), "idempotency-key": `k-${salt}` };
    const [one, two] = await Promise.all([chat.complete(request, { headers: key }), chat.complete(request, { headers: key })]);
    const three = await chat.complete(request, { headers: key });
    expect(upstreamCalls()).toBe(1);
    expect([one, two, three].map((r) => r.route?.cacheStatus).sort()).toEqual(
      [CacheStatus.MISS, CacheStatus.HIT, CacheStatus.COALESCED].sort(),
    );
    const err = await chat.complete(fresh(), { headers: key }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toMatch(/idempotency/);
    // The key is the tenant's: another tenant's same key is its own.
    await chat.complete(fresh(), { headers: { ...bearer(keys.b), "idempotency-key": `k-${salt}` } });
    expect(upstreamCalls()).toBe(2);
  });

  it("the request field works like the header", async () => {
    const chat = chatOf(transports[0]!);
    const request = fresh({ temperature: 1, idempotencyKey: `field-${salt}` });
    await chat.complete(request, { headers: bearer(keys.a) });
    expect((await chat.complete(request, { headers: bearer(keys.a) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    expect(upstreamCalls()).toBe(1);
  });
});

describe("purge", () => {
  it("an admin deletes a tenant's (or one end user's) entries; others may not", async () => {
    const admin = createClient(AdminService, transports[0]!.transport);
    const chat = chatOf(transports[0]!);
    const forUser = fresh({ metadata: { end_user: "alice" } });
    const other = fresh();
    await chat.complete(forUser, { headers: bearer(keys.b) });
    await chat.complete(other, { headers: bearer(keys.b) });
    const denied = await admin
      .purgeCache({ tenant: "b" }, { headers: bearer(keys.a) })
      .catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
    const purged = await admin.purgeCache({ tenant: "b", endUser: "alice" }, { headers: bearer(keys.ops) });
    expect(purged.cacheEntries).toBe(1n);
    expect((await chat.complete(forUser, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
    expect((await chat.complete(other, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.HIT);
    const all = await admin.purgeCache({ tenant: "b" }, { headers: bearer(keys.ops) });
    expect(all.cacheEntries).toBeGreaterThanOrEqual(2n);
    expect((await chat.complete(other, { headers: bearer(keys.b) })).route?.cacheStatus).toBe(CacheStatus.MISS);
  });
});
