import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { CompleteResponseSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import type { Logger } from "../telemetry/logger.js";
import type { AnswerCache, CacheScope, IdempotencyClaim } from "./answer-cache.js";
import { connectRedis, errorMessage, type RedisStateConfig } from "./redis-connection.js";
import { StateUnavailableError } from "./state-store.js";

/** Claims an idempotency key: {0} claimed, {1, fingerprint} pending, {2, fingerprint, answer} done. */
const claimScript = `
local f = redis.call('HGET', KEYS[1], 'f')
if not f then
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 'u', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {0}
end
local v = redis.call('HGET', KEYS[1], 'v')
if v then return {2, f, v} end
return {1, f}
`;

/** Stores the claimed call's answer, if the record is still this call's (a purge may have deleted it). */
const completeScript = `
if redis.call('HGET', KEYS[1], 'f') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

/** Frees a pending key held by this fingerprint (the call failed). */
const releaseScript = `
if redis.call('HGET', KEYS[1], 'f') == ARGV[1] and redis.call('HEXISTS', KEYS[1], 'v') == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`;

type Runner = (numKeys: number, ...args: (string | number | Buffer)[]) => Promise<unknown>;

/** Redis glob metacharacters in a literal part of a SCAN pattern. */
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, "\\$&");

/**
 * The response cache and idempotency records in Redis, shared by every replica. Keys (all
 * under the state store's hash tag): `rc:<tenant>:<user>:<hash>` an answer (its store time
 * and protobuf binary, with a TTL), `ri:<tenant>:<key hash>` an idempotency record (a hash:
 * `f` the request's fingerprint, `u` the end user, `v` the answer once done). A purge SCANs
 * the tenant's keys. Its own connection, with the state store's failure rules: no offline
 * queue, `timeoutMs` per command; a read that fails is a miss (the call goes upstream), a
 * claim that fails rejects with StateUnavailableError.
 */
export function createRedisAnswerCache(config: RedisStateConfig, deps: { readonly logger: Logger }): AnswerCache {
  const connection = connectRedis(config);
  const { redis, base, where } = connection;
  redis.defineCommand("sluiceCacheClaim", { lua: claimScript });
  redis.defineCommand("sluiceCacheComplete", { lua: completeScript });
  redis.defineCommand("sluiceCacheRelease", { lua: releaseScript });
  const commands = redis as unknown as Record<string, Runner>;
  let warned = false;
  redis.on("ready", () => {
    warned = false;
  });

  function warn(operation: string, err: unknown): void {
    if (warned) return;
    warned = true;
    deps.logger.warn(
      { backend: "redis", redis: where, operation, err: errorMessage(err) },
      "response cache: redis did not answer",
    );
  }

  const connected = connection.firstConnection;

  const answerKey = (scope: CacheScope, key: string) => `${base}rc:${scope.tenant}:${scope.user}:${key}`;
  const recordKey = (scope: CacheScope, key: string) => `${base}ri:${scope.tenant}:${key}`;

  async function scanDelete(pattern: string, keep?: (key: string) => Promise<boolean>): Promise<number> {
    let cursor = "0";
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 500);
      cursor = next;
      const doomed: string[] = [];
      for (const key of keys) if (keep === undefined || !(await keep(key))) doomed.push(key);
      if (doomed.length > 0) deleted += await redis.unlink(...doomed);
    } while (cursor !== "0");
    return deleted;
  }

  return {
    backend: "redis",
    async get(scope, key) {
      try {
        await connected();
        const value = await redis.getBuffer(answerKey(scope, key));
        if (value === null) return undefined;
        const colon = value.indexOf(58);
        const storedAt = Number(value.subarray(0, colon).toString("latin1"));
        return { response: fromBinary(CompleteResponseSchema, value.subarray(colon + 1)), storedAt };
      } catch (err) {
        warn("get", err);
        return undefined;
      }
    },
    async set(scope, key, response, _size, ttlMs, now) {
      try {
        // Without the offline queue a command sent before the connection is ready fails: wait for it (a bypass
        // call's first write on a fresh connection has no read before it that would have waited).
        await connected();
        const value = Buffer.concat([Buffer.from(`${now}:`, "latin1"), toBinary(CompleteResponseSchema, response)]);
        await redis.set(answerKey(scope, key), value, "PX", ttlMs);
      } catch (err) {
        warn("set", err);
      }
    },
    async claim(scope, key, fingerprint, pendingMs): Promise<IdempotencyClaim> {
      await connected();
      let reply: (number | Buffer)[];
      try {
        reply = (await commands["sluiceCacheClaimBuffer"]!(1, recordKey(scope, key), fingerprint, scope.user, pendingMs)) as (
          | number
          | Buffer
        )[];
      } catch (err) {
        throw new StateUnavailableError(`redis ${where} did not answer an idempotency claim: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      const kind = Number(reply[0]);
      if (kind === 0) return { kind: "claimed" };
      const found = (reply[1] as Buffer).toString("latin1");
      if (kind === 1) return { kind: "pending", fingerprint: found };
      return { kind: "done", fingerprint: found, response: fromBinary(CompleteResponseSchema, reply[2] as Buffer) };
    },
    async complete(scope, key, fingerprint, response, ttlMs) {
      try {
        await connected();
        await commands["sluiceCacheComplete"]!(
          1,
          recordKey(scope, key),
          fingerprint,
          Buffer.from(toBinary(CompleteResponseSchema, response)),
          ttlMs,
        );
      } catch (err) {
        warn("complete", err);
      }
    },
    async release(scope, key, fingerprint) {
      try {
        await connected();
        await commands["sluiceCacheRelease"]!(1, recordKey(scope, key), fingerprint);
      } catch (err) {
        warn("release", err);
      }
    },
    async purge(tenant, user) {
      await connected();
      try {
        const t = globEscape(tenant);
        const entries = await scanDelete(`${globEscape(base)}rc:${t}:${user === undefined ? "*" : `${globEscape(user)}:*`}`);
        const records = await scanDelete(
          `${globEscape(base)}ri:${t}:*`,
          user === undefined ? undefined : async (key) => (await redis.hget(key, "u")) !== user,
        );
        return { entries, records };
      } catch (err) {
        throw new StateUnavailableError(`redis ${where} did not answer a cache purge: ${errorMessage(err)}`, { cause: err });
      }
    },
    async close() {
      await connection.close();
    },
  };
}
