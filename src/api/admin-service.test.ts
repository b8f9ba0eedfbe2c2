import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AdminService, UsagePeriod } from "../../gen/sluice/v1/admin_service_pb.js";
import { parseConfig } from "../config/load-config.js";
import { anonymous, everyModel, identityKey } from "../identity/identity.js";
import { createMemoryState } from "../state/memory-state.js";
import { StateUnavailableError, type StateStore, type UsageEntry } from "../state/state-store.js";
import { createAdminService } from "./admin-service.js";

const config = parseConfig(
  {
    providers: { demo: { type: "demo" } },
    models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    tenants: {
      ops: { apiKeys: [], models: ["*"], admin: true },
      "team-a": { apiKeys: [], models: ["*"] },
      "team-b": { apiKeys: [], models: ["*"] },
    },
  },
  {},
);

/** 2026-03-14T12:00:00Z: "now" for every test. */
const now = Date.UTC(2026, 2, 14, 12);
const day = 86_400_000;

const entry = (over: Partial<UsageEntry>): UsageEntry => ({
  tenant: "team-a",
  keyId: "ci",
  alias: "demo",
  deployment: "demo/sluice-demo-1",
  inputTokens: 10,
  outputTokens: 20,
  costMicroUsd: 1_500,
  at: now,
  ...over,
});

function filledState(): StateStore {
  const state = createMemoryState();
  for (const e of [
    entry({}),
    entry({ inputTokens: 5, outputTokens: 7, costMicroUsd: 500 }),
    entry({ keyId: "batch", alias: "claude", deployment: "anthropic/claude-x", costMicroUsd: 2_000_000 }),
    entry({ tenant: "team-b", keyId: "sha256:0011aabb", alias: "demo" }),
    entry({ tenant: "ops", keyId: "root", alias: "demo", deployment: "demo/a" }),
    // Earlier this month, another day.
    entry({ tenant: "team-b", keyId: "sha256:0011aabb", at: now - 3 * day }),
    // Last month.
    entry({ tenant: "team-a", at: Date.UTC(2026, 1, 27) }),
  ]) {
    state.recordUsage(e);
  }
  return state;
}

/** The caller is `x-test-tenant` (absent: anonymous), as the authentication step would leave it. */
const asTenant: Interceptor = (next) => (req) => {
  const tenant = req.header.get("x-test-tenant");
  if (tenant !== null) req.contextValues.set(identityKey, { tenant, keyId: "k", method: "api_key", models: everyModel });
  else req.contextValues.set(identityKey, anonymous);
  return next(req);
};

function client(state: StateStore = filledState()) {
  const service = createAdminService({ state, tenants: config.tenants, now: () => now });
  const transport = createRouterTransport((router) => router.service(AdminService, service), {
    router: { interceptors: [asTenant] },
  });
  return createClient(AdminService, transport);
}

const as = (tenant: string) => ({ headers: { "x-test-tenant": tenant } });

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

describe("AdminService.GetUsage", () => {
  it("an admin reads today's usage of every tenant: rows sorted by tenant, model, deployment, key; cost in USD; totals", async () => {
    const answer = await client().getUsage({}, as("ops"));
    expect(answer.period).toBe(UsagePeriod.DAY);
    expect(answer.date).toBe("2026-03-14");
    expect(
      answer.rows.map((r) => [r.tenant, r.model, r.deployment, r.keyId, r.requests, r.inputTokens, r.outputTokens, r.costUsd]),
    ).toEqual([
      ["ops", "demo", "demo/a", "root", 1n, 10n, 20n, 0.0015],
      ["team-a", "claude", "anthropic/claude-x", "batch", 1n, 10n, 20n, 2],
      ["team-a", "demo", "demo/sluice-demo-1", "ci", 2n, 15n, 27n, 0.002],
      ["team-b", "demo", "demo/sluice-demo-1", "sha256:0011aabb", 1n, 10n, 20n, 0.0015],
    ]);
    expect(answer.totals).toMatchObject({ requests: 5n, inputTokens: 45n, outputTokens: 87n });
    expect(answer.totals?.costUsd).toBeCloseTo(2.005, 9);
  });

  it("a day bucket by date; an empty one has no rows and zero totals", async () => {
    const earlier = await client().getUsage({ period: UsagePeriod.DAY, date: "2026-03-11" }, as("ops"));
    expect(earlier.rows.map((r) => [r.tenant, r.requests])).toEqual([["team-b", 1n]]);
    const none = await client().getUsage({ period: UsagePeriod.DAY, date: "2026-03-12" }, as("ops"));
    expect(none.rows).toEqual([]);
    expect(none.totals).toMatchObject({ requests: 0n, inputTokens: 0n, outputTokens: 0n, costUsd: 0 });
  });

  it("month buckets: the current month by default, a past one by date", async () => {
    const march = await client().getUsage({ period: UsagePeriod.MONTH }, as("ops"));
    expect(march.period).toBe(UsagePeriod.MONTH);
    expect(march.date).toBe("2026-03");
    expect(march.rows.find((r) => r.tenant === "team-b")?.requests).toBe(2n);
    expect(march.totals?.requests).toBe(6n);
    const february = await client().getUsage({ period: UsagePeriod.MONTH, date: "2026-02" }, as("ops"));
    expect(february.rows.map((r) => [r.tenant, r.keyId, r.requests])).toEqual([["team-a", "ci", 1n]]);
  });

  it("filters by tenant", async () => {
    const answer = await client().getUsage({ tenant: "team-a", period: UsagePeriod.MONTH }, as("ops"));
    expect(new Set(answer.rows.map((r) => r.tenant))).toEqual(new Set(["team-a"]));
    expect(answer.totals?.requests).toBe(3n);
  });

  it.each([
    ["a tenant without admin", as("team-a")],
    ["an anonymous caller", {}],
    ["a tenant that is not configured", as("ghost")],
  ])("refuses %s: PERMISSION_DENIED, reason ADMIN_ONLY", async (_name, options) => {
    const err = await failure(client().getUsage({ tenant: "team-a" }, options));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "ADMIN_ONLY", domain: "sluice" });
  });

  it.each([
    [UsagePeriod.DAY, "2026-3-14"],
    [UsagePeriod.DAY, "2026-02-30"],
    [UsagePeriod.DAY, "2026-03"],
    [UsagePeriod.UNSPECIFIED, "yesterday"],
    [UsagePeriod.MONTH, "2026-13"],
    [UsagePeriod.MONTH, "2026-03-14"],
  ])("period %s with date %j: INVALID_ARGUMENT naming `date`", async (period, date) => {
    const err = await failure(client().getUsage({ period, date }, as("ops")));
    expect(err.code).toBe(Code.InvalidArgument);
    const violations = err.findDetails(BadRequestSchema)[0]?.fieldViolations ?? [];
    expect(violations.map((v) => v.field)).toEqual(["date"]);
  });

  it("an unknown period value: INVALID_ARGUMENT naming `period`", async () => {
    const err = await failure(client().getUsage({ period: 7 as UsagePeriod }, as("ops")));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual(["period"]);
  });

  it("the state store not answering: UNAVAILABLE with RetryInfo of 1 s", async () => {
    const state: StateStore = {
      ...createMemoryState(),
      usage: () => Promise.reject(new StateUnavailableError("redis: connection refused")),
    };
    const err = await failure(client(state).getUsage({}, as("ops")));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/usage ledger unavailable/);
    expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
  });
});
