import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompleteResponseSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { type AnswerCache, createMemoryAnswerCache } from "../../src/state/answer-cache.js";
import { createRedisAnswerCache } from "../../src/state/redis-answer-cache.js";
import { createLogger } from "../../src/telemetry/logger.js";
import { type RedisServer, redisMissing, startRedis } from "../helpers/redis-server.js";

/**
 * Issue 16: the two answer stores (in-process LRU, Redis with a real redis-server) keep the
 * same contract — answers per tenant, idempotency claims (claimed, pending, done, fingerprint),
 * release only by the holder, a completion after a purge not bringing the record back, purge
 * by tenant or end user leaving the others alone.
 */

// Outside CI without redis-server: the Redis half is skipped (the note says why); under CI=true redisMissing throws.
const missing = await redisMissing();
if (missing !== undefined) console.warn(missing);

const answer = (id: string) => create(CompleteResponseSchema, { id, model: "m" });
const scope = (tenant: string, user = "-") => ({ tenant, user });

let redis: RedisServer | undefined;
const stores: AnswerCache[] = [];

beforeAll(async () => {
  if (missing === undefined) redis = await startRedis();
});
afterAll(async () => {
  for (const store of stores) await store.close();
  await redis?.close();
});

let prefix = 0;
const backends: { name: string; make: () => AnswerCache; skip: boolean }[] = [
  { name: "memory", make: () => createMemoryAnswerCache({ maxEntries: 100, maxBytes: 1 << 20, maxRecords: 100 }), skip: false },
  {
    name: "redis",
    make: () =>
      createRedisAnswerCache(
        { url: redis!.url, keyPrefix: `answers-${++prefix}:`, timeoutMs: 1_000, failMode: "open" } as never,
        { logger: createLogger({ level: "silent" }) },
      ),
    skip: missing !== undefined,
  },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`${backend.name} answer store`, () => {
    const make = () => {
      const store = backend.make();
      stores.push(store);
      return store;
    };

    it("answers are per tenant and expire", async () => {
      const store = make();
      await store.set(scope("a"), "k1", answer("x"), 100, 200, 1_000);
      expect((await store.get(scope("a"), "k1"))?.response.id).toBe("x");
      expect((await store.get(scope("a"), "k1"))?.storedAt).toBe(1_000);
      expect(await store.get(scope("b"), "k1")).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await store.get(scope("a"), "k1")).toBeUndefined();
    });

    it("claims: claimed, pending with its fingerprint, done with the answer; per tenant", async () => {
      const store = make();
      expect(await store.claim(scope("a"), "i1", "f1", 10_000)).toEqual({ kind: "claimed" });
      expect(await store.claim(scope("a"), "i1", "f2", 10_000)).toEqual({ kind: "pending", fingerprint: "f1" });
      expect(await store.claim(scope("b"), "i1", "f2", 10_000)).toEqual({ kind: "claimed" });
      await store.complete(scope("a"), "i1", "f1", answer("done-1"), 10_000);
      const done = await store.claim(scope("a"), "i1", "f1", 10_000);
      expect(done.kind).toBe("done");
      expect(done.kind === "done" && done.response.id).toBe("done-1");
      expect(done.kind === "done" && done.fingerprint).toBe("f1");
    });

    it("release frees a pending key only for its holder, never a finished one", async () => {
      const store = make();
      await store.claim(scope("a"), "i2", "f1", 10_000);
      await store.release(scope("a"), "i2", "other");
      expect((await store.claim(scope("a"), "i2", "f1", 10_000)).kind).toBe("pending");
      await store.release(scope("a"), "i2", "f1");
      expect((await store.claim(scope("a"), "i2", "f3", 10_000)).kind).toBe("claimed");
      await store.complete(scope("a"), "i2", "f3", answer("kept"), 10_000);
      await store.release(scope("a"), "i2", "f3");
      expect((await store.claim(scope("a"), "i2", "f3", 10_000)).kind).toBe("done");
    });

    it("a pending key expires (a replica that died mid-call frees it)", async () => {
      const store = make();
      await store.claim(scope("a"), "i3", "f1", 150);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await store.claim(scope("a"), "i3", "f2", 10_000)).kind).toBe("claimed");
    });

    it("purge: one end user's or a whole tenant's entries and records; a completion after it does not bring the record back", async () => {
      const store = make();
      await store.set(scope("t", "alice"), "k-a", answer("a"), 100, 60_000, 1);
      await store.set(scope("t", "bob"), "k-b", answer("b"), 100, 60_000, 1);
      await store.set(scope("t2", "alice"), "k-a", answer("other tenant"), 100, 60_000, 1);
      await store.claim(scope("t", "alice"), "i-a", "f", 60_000);
      await store.claim(scope("t", "bob"), "i-b", "f", 60_000);
      await store.complete(scope("t", "bob"), "i-b", "f", answer("b"), 60_000);

      expect(await store.purge("t", "alice")).toEqual({ entries: 1, records: 1 });
      expect(await store.get(scope("t", "alice"), "k-a")).toBeUndefined();
      expect((await store.get(scope("t", "bob"), "k-b"))?.response.id).toBe("b");
      // Alice's call was in flight: finishing it after the purge stores nothing.
      await store.complete(scope("t", "alice"), "i-a", "f", answer("late"), 60_000);
      expect((await store.claim(scope("t", "alice"), "i-a", "f", 60_000)).kind).toBe("claimed");

      const all = await store.purge("t", undefined);
      expect(all.entries).toBe(1);
      expect(all.records).toBe(2);
      expect(await store.get(scope("t", "bob"), "k-b")).toBeUndefined();
      expect((await store.claim(scope("t", "bob"), "i-b", "f", 60_000)).kind).toBe("claimed");
      expect((await store.get(scope("t2", "alice"), "k-a"))?.response.id).toBe("other tenant");
    });
  });
}
