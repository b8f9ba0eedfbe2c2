import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type AdminService,
  type GetUsageRequest,
  type GetUsageResponse,
  GetUsageResponseSchema,
  PurgeCacheResponseSchema,
  UsagePeriod,
} from "../../gen/sluice/v1/admin_service_pb.js";
import type { SluiceConfig } from "../config/schema.js";
import { errorInfo, gatewayError, retryInfo } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { identityKey } from "../identity/identity.js";
import { StateUnavailableError, type StateStore, type UsagePeriod as LedgerPeriod } from "../state/state-store.js";
import { usageBuckets } from "../state/usage-buckets.js";
import { ViolationList } from "./violation-list.js";
import type { AnswerCache } from "../state/answer-cache.js";
import { userTag } from "../cache/request-key.js";

export interface AdminServiceDeps {
  /** Where the usage ledger is read. */
  readonly state: StateStore;
  /** The configured tenants: a caller's tenant must set `admin: true`. */
  readonly tenants: SluiceConfig["tenants"];
  /** The response cache and idempotency records (PurgeCache); absent: nothing to purge. */
  readonly cache?: AnswerCache;
  /** Epoch ms; the day or month read when a request names none. Default: Date.now. */
  readonly now?: () => number;
}

/** What a caller waits before asking again when the state store did not answer. */
export const stateRetryMs = 1_000;

const dayPattern = /^(\d{4})-(\d{2})-(\d{2})$/;
const monthPattern = /^(\d{4})-(\d{2})$/;

/**
 * sluice.v1.AdminService: the usage ledger, for the credentials of tenants configured with
 * `admin: true`. Everyone else — other tenants and anonymous callers (no tenants
 * configured) — gets PERMISSION_DENIED, reason ADMIN_ONLY.
 */
export function createAdminService(deps: AdminServiceDeps): ServiceImpl<typeof AdminService> {
  const { state, tenants } = deps;
  const now = deps.now ?? Date.now;
  const admins = new Set(
    Object.entries(tenants)
      .filter(([, tenant]) => tenant.admin)
      .map(([name]) => name),
  );
  return {
    async getUsage(request, context) {
      const identity = context.values.get(identityKey);
      if (identity.tenant === "" || !admins.has(identity.tenant)) throw adminOnly();
      const { period, bucket } = readPeriod(request, now());
      let ledgerRows;
      try {
        ledgerRows = await state.usage({ tenant: request.tenant, period, bucket });
      } catch (err) {
        if (err instanceof StateUnavailableError) throw stateUnavailable(err);
        throw err;
      }
      return usageResponse(period, bucket, ledgerRows);
    },
    async purgeCache(request, context) {
      const identity = context.values.get(identityKey);
      if (identity.tenant === "" || !admins.has(identity.tenant)) throw adminOnly();
      const v = new ViolationList();
      if (request.tenant === "") v.add("tenant", "required: the tenant whose entries to delete");
      else if (!(request.tenant in tenants)) v.add("tenant", "not a configured tenant");
      const error = v.toError();
      if (error !== undefined) throw error;
      if (deps.cache === undefined) return create(PurgeCacheResponseSchema, {});
      let count;
      try {
        count = await deps.cache.purge(request.tenant, request.endUser === "" ? undefined : userTag(request.endUser));
      } catch (err) {
        if (err instanceof StateUnavailableError) throw stateUnavailable(err, "response cache");
        throw err;
      }
      return create(PurgeCacheResponseSchema, { cacheEntries: BigInt(count.entries), idempotencyRecords: BigInt(count.records) });
    },
  };
}

/** The period and bucket a request names (its defaults filled in); INVALID_ARGUMENT + BadRequest otherwise. */
function readPeriod(request: GetUsageRequest, at: number): { period: LedgerPeriod; bucket: string } {
  const v = new ViolationList();
  let period: LedgerPeriod = "day";
  if (request.period === UsagePeriod.MONTH) period = "month";
  else if (request.period !== UsagePeriod.DAY && request.period !== UsagePeriod.UNSPECIFIED) {
    v.add("period", "USAGE_PERIOD_DAY or USAGE_PERIOD_MONTH");
  }
  let bucket = request.date;
  if (bucket === "") bucket = usageBuckets(at)[period];
  else if (period === "day" && !isDay(bucket)) {
    v.add(
      "date",
      monthPattern.test(bucket)
        ? "USAGE_PERIOD_DAY reads a day: YYYY-MM-DD (or set period USAGE_PERIOD_MONTH for a month)"
        : "a UTC day, YYYY-MM-DD",
    );
  } else if (period === "month" && !isMonth(bucket)) {
    v.add(
      "date",
      dayPattern.test(bucket) ? "USAGE_PERIOD_MONTH reads a month: YYYY-MM (or leave period for a day)" : "a UTC month, YYYY-MM",
    );
  }
  const error = v.toError();
  if (error !== undefined) throw error;
  return { period, bucket };
}

/** `YYYY-MM-DD`, a day that exists (no 2026-02-30). */
function isDay(text: string): boolean {
  const match = dayPattern.exec(text);
  if (match === null) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** `YYYY-MM`, months 01 to 12. */
function isMonth(text: string): boolean {
  const match = monthPattern.exec(text);
  if (match === null) return false;
  const month = Number(match[2]);
  return month >= 1 && month <= 12;
}

type LedgerRow = Awaited<ReturnType<StateStore["usage"]>>[number];

/** Rows sorted by tenant, model, deployment, key; cost in USD; their totals. */
function usageResponse(period: LedgerPeriod, bucket: string, ledgerRows: readonly LedgerRow[]): GetUsageResponse {
  const sorted = [...ledgerRows].sort(
    (a, b) =>
      compare(a.tenant, b.tenant) ||
      compare(a.alias, b.alias) ||
      compare(a.deployment, b.deployment) ||
      compare(a.keyId, b.keyId),
  );
  let requests = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  let costMicroUsd = 0;
  for (const row of sorted) {
    requests += row.requests;
    inputTokens += row.inputTokens;
    outputTokens += row.outputTokens;
    costMicroUsd += row.costMicroUsd;
  }
  return create(GetUsageResponseSchema, {
    period: period === "month" ? UsagePeriod.MONTH : UsagePeriod.DAY,
    date: bucket,
    rows: sorted.map((row) => ({
      tenant: row.tenant,
      keyId: row.keyId,
      model: row.alias,
      deployment: row.deployment,
      requests: BigInt(row.requests),
      inputTokens: BigInt(row.inputTokens),
      outputTokens: BigInt(row.outputTokens),
      costUsd: row.costMicroUsd / 1e6,
    })),
    totals: {
      requests: BigInt(requests),
      inputTokens: BigInt(inputTokens),
      outputTokens: BigInt(outputTokens),
      costUsd: costMicroUsd / 1e6,
    },
  });
}

/** Code-point order: the same whatever the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function adminOnly(): ConnectError {
  return gatewayError(
    Code.PermissionDenied,
    reasons.adminOnly,
    "AdminService needs the credentials of an admin tenant (tenants.NAME.admin: true)",
  );
}

/** UNAVAILABLE with a RetryInfo of one second: the state store (Redis) did not answer. */
function stateUnavailable(err: StateUnavailableError, what = "usage ledger"): ConnectError {
  return new ConnectError(
    `${what} unavailable: the state store did not answer; retry shortly`,
    Code.Unavailable,
    undefined,
    [errorInfo(reasons.stateUnavailable), retryInfo(stateRetryMs)],
    err,
  );
}
