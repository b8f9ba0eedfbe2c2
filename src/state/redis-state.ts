import type { Logger } from "../telemetry/logger.js";
import { connectRedis, errorMessage, type RedisStateConfig } from "./redis-connection.js";
import { admitScript, recordUsageScript, rememberOnceScript, renewScript, settleScript } from "./redis-scripts.js";
import { slotRetryMs } from "./memory-state.js";
import {
  type AdmissionOutcome,
  type AdmissionRequest,
  type Settlement,
  type StateHealth,
  type StateStore,
  StateUnavailableError,
  type UsageEntry,
  type UsageQuery,
  type UsageRow,
  type WindowState,
} from "./state-store.js";
import { periodEnd } from "./usage-buckets.js";

export type { RedisStateConfig } from "./redis-connection.js";

export interface RedisStateDeps {
  readonly logger: Logger;
  /** A settle, renew or usage record Redis did not take (for a counter); called per failure. */
  readonly onError?: (operation: string, err: unknown) => void;
}

/** Usage buckets live this long after their period ends (as in-process: 62 days, 2 years). */
const dayKeptMs = 62 * 86_400_000;
const monthKeptMs = 730 * 86_400_000;

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

const scripts = {
  sluiceAdmit: admitScript,
  sluiceSettle: settleScript,
  sluiceRenew: renewScript,
  sluiceRecordUsage: recordUsageScript,
  sluiceRememberOnce: rememberOnceScript,
} as const;

const usageMetrics = { n: "requests", i: "inputTokens", o: "outputTokens", c: "costMicroUsd" } as const;

/**
 * Limits, budgets, usage and nonces in Redis, shared by every replica (issue 14). Each
 * operation is one Lua script (redis-scripts.ts, EVALSHA; ioredis re-sends the source after a
 * Redis restart flushed it), so admissions from many replicas never interleave; the answers are
 * the in-process store's (test/helpers/state-store-contract.ts).
 *
 * Keys: `{prefix}` + a kind + the caller's key — `w:`/`wc:` windows, `s:` slots, `b:`/`br:`
 * budgets, `u:`/`ut:` usage, `n:` nonces (layout in redis-scripts.ts). The prefix is the hash
 * tag, so all keys of one store share a Redis Cluster slot (redisKeyBase).
 *
 * Failure: no offline queue and no retries, a command timeout of `timeoutMs`: while Redis is
 * unreachable or slow, `admit`, `usage` and `rememberOnce` reject at once (or after
 * `timeoutMs`) with StateUnavailableError; `settle`, `renew` and `recordUsage` report to
 * `onError` and never reject. The connection comes back by itself (backoff 50 ms → 2 s).
 */
export function createRedisState(config: RedisStateConfig, deps: RedisStateDeps): StateStore {
  const { logger } = deps;
  const connection = connectRedis(config);
  const { redis, base, where } = connection;
  for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(name, { lua });
  const run = (name: keyof typeof scripts, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> =>
    (redis as unknown as Record<string, ScriptRunner>)[name]!(keys.length, ...keys, ...args);

  let up = false;
  let closing = false;
  /** Why Redis is unreachable (the last connection error), for health and logs. */
  let lastError = "connecting";
  /** A failed settle/renew/recordUsage was logged in this stretch of failures. */
  let failureLogged = false;
  /** The loss of the connection (or the first failure to connect) was logged. */
  let lossLogged = false;

  redis.on("ready", () => {
    up = true;
    failureLogged = false;
    if (lossLogged) logger.info({ backend: "redis", redis: where }, "state store: redis reachable again");
    lossLogged = false;
  });
  redis.on("error", (err: Error) => {
    lastError = err.message;
    if (!up && !lossLogged && !closing) {
      lossLogged = true;
      logger.warn({ backend: "redis", redis: where, err: err.message }, "state store: redis unreachable");
    }
  });
  redis.on("close", () => {
    if (!up || closing) return;
    up = false;
    lossLogged = true;
    logger.warn({ backend: "redis", redis: where, err: lastError }, "state store: redis connection lost");
  });

  const key = (kind: string, name: string): string => `${base}${kind}${name}`;

  /** Runs a script whose caller needs the answer: rejects with StateUnavailableError when Redis cannot give it. */
  async function ask(name: keyof typeof scripts, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    await firstConnection();
    try {
      return await run(name, keys, args);
    } catch (err) {
      throw unavailable(name, err);
    }
  }

  /** Runs a script nobody waits for: a failure goes to onError (and the log, once per outage). */
  async function tell(
    operation: string,
    name: keyof typeof scripts,
    keys: readonly string[],
    args: readonly (string | number)[],
  ) {
    try {
      await run(name, keys, args);
      failureLogged = false;
    } catch (err) {
      deps.onError?.(operation, err);
      // While the connection is down its loss is already logged; a slow Redis is logged once per stretch.
      if (up && !failureLogged) {
        failureLogged = true;
        logger.warn({ backend: "redis", operation, err: errorMessage(err) }, "state store: redis did not take an update");
      }
    }
  }

  const firstConnection = connection.firstConnection;

  function unavailable(operation: string, err: unknown): StateUnavailableError {
    return new StateUnavailableError(`redis ${where} did not answer ${operation}: ${errorMessage(err)}`, { cause: err });
  }

  function windowKeys(windowKey: string): [string, string] {
    return [key("w:", windowKey), key("wc:", windowKey)];
  }

  function budgetKeys(budgetKey: string): [string, string] {
    return [key("b:", budgetKey), key("br:", budgetKey)];
  }

  function usageRows(tenant: string, hash: Record<string, string>, into: Map<string, UsageRow>): void {
    for (const [field, value] of Object.entries(hash)) {
      const metric = usageMetrics[field[0] as keyof typeof usageMetrics];
      if (metric === undefined) continue;
      const rowKey = `${tenant}\0${field.slice(1)}`;
      let row = into.get(rowKey);
      if (row === undefined) {
        const [keyId, alias, deployment] = JSON.parse(field.slice(1)) as [string, string, string];
        row = { tenant, keyId, alias, deployment, requests: 0, inputTokens: 0, outputTokens: 0, costMicroUsd: 0 };
        into.set(rowKey, row);
      }
      (row as { -readonly [K in keyof UsageRow]: UsageRow[K] })[metric] = Number(value);
    }
  }

  return {
    backend: "redis",

    async admit(request: AdmissionRequest, now: number): Promise<AdmissionOutcome> {
      if (request.windows.length + request.slots.length + request.budgets.length === 0) return { admitted: true, windows: [] };
      const keys: string[] = [];
      const args: (string | number)[] = [
        now,
        request.id,
        request.leaseMs,
        request.windows.length,
        request.slots.length,
        request.budgets.length,
      ];
      for (const charge of request.windows) {
        keys.push(...windowKeys(charge.key));
        args.push(charge.limit, charge.windowMs, charge.cost);
      }
      for (const charge of request.slots) {
        keys.push(key("s:", charge.key));
        args.push(charge.limit);
      }
      for (const charge of request.budgets) {
        keys.push(...budgetKeys(charge.key));
        args.push(charge.limit, charge.amount, charge.periodEndMs);
      }
      const reply = (await ask("sluiceAdmit", keys, args)) as number[];
      const windows: WindowState[] = [];
      for (let i = 4; i + 1 < reply.length; i += 2) windows.push({ remaining: reply[i]!, resetMs: reply[i + 1]! });
      if (reply[0] === 1) return { admitted: true, windows };
      const index = reply[2]!;
      switch (reply[1]) {
        case 1:
          return { admitted: false, kind: "window", index, retryAfterMs: reply[3]!, windows };
        case 2:
          return { admitted: false, kind: "slot", index, retryAfterMs: slotRetryMs, windows };
        default:
          return {
            admitted: false,
            kind: "budget",
            index,
            retryAfterMs: Math.max(1, request.budgets[index]!.periodEndMs - now),
            windows,
          };
      }
    },

    async settle(settlement: Settlement, now: number): Promise<void> {
      const keys: string[] = [];
      const args: (string | number)[] = [
        now,
        settlement.id,
        settlement.windows.length,
        settlement.slots.length,
        settlement.budgets.length,
      ];
      for (const window of settlement.windows) {
        keys.push(...windowKeys(window.key));
        args.push(window.windowMs, window.reserved, window.cost);
      }
      for (const slot of settlement.slots) keys.push(key("s:", slot));
      for (const budget of settlement.budgets) {
        keys.push(...budgetKeys(budget.key));
        args.push(budget.spent, budget.periodEndMs);
      }
      if (keys.length === 0) return;
      await tell("settle", "sluiceSettle", keys, args);
    },

    async renew(calls, leaseMs, now): Promise<void> {
      const keys: string[] = [];
      const args: (string | number)[] = [now, leaseMs];
      for (const call of calls) {
        for (const slot of call.slots) keys.push(key("s:", slot));
        for (const budget of call.budgets) keys.push(key("br:", budget));
        args.push(call.id, call.slots.length, call.budgets.length);
      }
      if (keys.length === 0) return;
      await tell("renew", "sluiceRenew", keys, args);
    },

    async recordUsage(entry: UsageEntry): Promise<void> {
      const iso = new Date(entry.at).toISOString();
      const day = `day:${iso.slice(0, 10)}:`;
      const month = `month:${iso.slice(0, 7)}:`;
      const keys = [key("u:", day + entry.tenant), key("ut:", day), key("u:", month + entry.tenant), key("ut:", month)];
      const row = JSON.stringify([entry.keyId, entry.alias, entry.deployment]);
      const dayTtl = periodEnd(entry.at, "day") - entry.at + dayKeptMs;
      const monthTtl = periodEnd(entry.at, "month") - entry.at + monthKeptMs;
      const args = [entry.tenant, row, entry.inputTokens, entry.outputTokens, entry.costMicroUsd, dayTtl, monthTtl];
      await tell("recordUsage", "sluiceRecordUsage", keys, args);
    },

    async usage(query: UsageQuery): Promise<UsageRow[]> {
      await firstConnection();
      const bucket = `${query.period}:${query.bucket}:`;
      const rows = new Map<string, UsageRow>();
      try {
        const tenants = query.tenant === "" ? await redis.smembers(key("ut:", bucket)) : [query.tenant];
        if (tenants.length === 0) return [];
        const pipeline = redis.pipeline();
        for (const tenant of tenants) pipeline.hgetall(key("u:", bucket + tenant));
        const replies = (await pipeline.exec()) ?? [];
        for (let i = 0; i < tenants.length; i++) {
          const [err, hash] = replies[i] ?? [new Error("no reply"), null];
          if (err) throw err;
          usageRows(tenants[i]!, hash as Record<string, string>, rows);
        }
      } catch (err) {
        throw unavailable("usage", err);
      }
      return [...rows.values()];
    },

    async rememberOnce(nonce: string, ttlMs: number, now: number): Promise<boolean> {
      return (await ask("sluiceRememberOnce", [key("n:", nonce)], [now, ttlMs])) === 1;
    },

    health(): StateHealth {
      if (up) return { status: "ok", backend: "redis" };
      return {
        status: "degraded",
        backend: "redis",
        detail: connection.everReady()
          ? `redis ${where} unreachable: ${lastError}`
          : `redis ${where} not connected yet: ${lastError}`,
      };
    },

    async close(): Promise<void> {
      closing = true;
      await connection.close();
    },
  };
}
