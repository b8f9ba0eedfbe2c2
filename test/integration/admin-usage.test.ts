import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { AdminService, type GetUsageResponse, UsagePeriod } from "../../gen/sluice/v1/admin_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { usageBuckets } from "../../src/state/usage-buckets.js";
import {
  allProtocolTransports,
  connectJsonTransport,
  createGrpcJsClient,
  toConnectError,
  type GrpcJsClient,
  type ProtocolTransport,
} from "../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

const opsKey = "sk-sluice-PLANTED-ops-admin-0f1e2d3c4b5a69788796a5b4";
const teamKey = "sk-sluice-PLANTED-team-usage-a1b2c3d4e5f60718293a4b5c";

const document = {
  providers: { demo: { type: "demo", wordDelayMs: 0 } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
  tenants: {
    ops: { apiKeys: [{ sha256: apiKeyHash(opsKey), id: "ops-key" }], models: ["*"], admin: true },
    team: { apiKeys: [{ sha256: apiKeyHash(teamKey), id: "ci" }], models: ["demo"] },
  },
};

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/**
 * The rows below are recorded 40 days ago: a day and a month no call of this test touches
 * (40 days back is always another month, and within the 62 days the ledger keeps).
 */
const past = Date.now() - 40 * 86_400_000;
const { day: pastDay, month: pastMonth } = usageBuckets(past);

/** Which path served each GetUsage call, by its `x-test-call` header: a fast lane or connect-node. */
const servedBy = new Map<string, "lane" | "connect-node">();
const recorder: Interceptor = (next) => (req) => {
  const id = req.header.get("x-test-call");
  if (id !== null && req.method.name === "GetUsage") servedBy.set(id, "context" in req ? "lane" : "connect-node");
  return next(req);
};

let gateway: StartedSluice;
let grpcJs: GrpcJsClient;
beforeAll(async () => {
  gateway = await startSluice(document, { interceptors: (chain) => [recorder, ...chain] });
  grpcJs = createGrpcJsClient(gateway.url);
  const entry = { alias: "demo", deployment: "demo/sluice-demo-1", at: past };
  const { state } = gateway.sluice;
  await state.recordUsage({ ...entry, tenant: "team", keyId: "ci", inputTokens: 100, outputTokens: 40, costMicroUsd: 250 });
  await state.recordUsage({ ...entry, tenant: "team", keyId: "ci", inputTokens: 50, outputTokens: 10, costMicroUsd: 250 });
  await state.recordUsage({
    ...entry,
    tenant: "ops",
    keyId: "ops-key",
    inputTokens: 7,
    outputTokens: 3,
    costMicroUsd: 1_000_000,
  });
});
afterAll(async () => {
  grpcJs?.close();
  await gateway?.close();
});

function expectPastDay(answer: GetUsageResponse): void {
  expect(answer.period).toBe(UsagePeriod.DAY);
  expect(answer.date).toBe(pastDay);
  expect(
    answer.rows.map((r) => [r.tenant, r.keyId, r.model, r.deployment, r.requests, r.inputTokens, r.outputTokens, r.costUsd]),
  ).toEqual([
    ["ops", "ops-key", "demo", "demo/sluice-demo-1", 1n, 7n, 3n, 1],
    ["team", "ci", "demo", "demo/sluice-demo-1", 2n, 150n, 50n, 0.0005],
  ]);
  expect(answer.totals).toMatchObject({ requests: 3n, inputTokens: 157n, outputTokens: 53n, costUsd: 1.0005 });
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

describe.each(["connect-json-h1", "connect-binary-h2", "grpc-web-h1", "grpc-h2"] as const)("GetUsage over %s", (protocol) => {
  let transport: ProtocolTransport;
  beforeAll(() => {
    transport = allProtocolTransports(gateway.url).find((t) => t.protocol === protocol)!;
  });
  afterAll(() => transport.close());

  it("an admin reads the ledger, served by the fast lane", async () => {
    const admin = createClient(AdminService, transport.transport);
    const call = `${protocol}-admin`;
    expectPastDay(await admin.getUsage({ date: pastDay }, { headers: { ...bearer(opsKey), "x-test-call": call } }));
    expect(servedBy.get(call)).toBe("lane");
    const month = await admin.getUsage(
      { period: UsagePeriod.MONTH, date: pastMonth, tenant: "team" },
      { headers: bearer(opsKey) },
    );
    expect(month.rows.map((r) => [r.tenant, r.requests])).toEqual([["team", 2n]]);
  });

  it("a tenant without admin: PERMISSION_DENIED (ADMIN_ONLY); no key: UNAUTHENTICATED; a bad date: INVALID_ARGUMENT", async () => {
    const admin = createClient(AdminService, transport.transport);
    const denied = await failure(admin.getUsage({}, { headers: { "x-api-key": teamKey } }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ADMIN_ONLY");
    expect((await failure(admin.getUsage({}))).code).toBe(Code.Unauthenticated);
    const bad = await failure(admin.getUsage({ period: UsagePeriod.MONTH, date: pastDay }, { headers: bearer(opsKey) }));
    expect(bad.code).toBe(Code.InvalidArgument);
  });
});

describe("GetUsage over Connect JSON: HTTP statuses", () => {
  const post = (headers: Record<string, string>, body = "{}") =>
    request(`${gateway.url}/sluice.v1.AdminService/GetUsage`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });

  it("200 with the rows for an admin; 403 for a tenant without admin; 401 without a key", async () => {
    const ok = await post(bearer(opsKey), JSON.stringify({ date: pastDay, tenant: "ops" }));
    expect(ok.statusCode).toBe(200);
    expect(await ok.body.json()).toEqual({
      period: "USAGE_PERIOD_DAY",
      date: pastDay,
      rows: [
        {
          tenant: "ops",
          keyId: "ops-key",
          model: "demo",
          deployment: "demo/sluice-demo-1",
          requests: "1",
          inputTokens: "7",
          outputTokens: "3",
          costUsd: 1,
        },
      ],
      totals: { requests: "1", inputTokens: "7", outputTokens: "3", costUsd: 1 },
    });
    const forbidden = await post(bearer(teamKey));
    expect(forbidden.statusCode).toBe(403);
    expect(await forbidden.body.json()).toMatchObject({ code: "permission_denied" });
    const anonymous = await post({});
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.dump();
    const bad = await post(bearer(opsKey), JSON.stringify({ date: "2026-02-30" }));
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
  });

  it("an empty date reads the current UTC day", async () => {
    const before = usageBuckets(Date.now()).day;
    const answer = await createClient(AdminService, connectJsonTransport(gateway.url).transport).getUsage(
      {},
      { headers: bearer(opsKey) },
    );
    expect([before, usageBuckets(Date.now()).day]).toContain(answer.date);
    expect(answer.period).toBe(UsagePeriod.DAY);
  });
});

describe("GetUsage over gRPC (grpc-js)", () => {
  it("an admin reads the ledger (fast lane); others are refused", async () => {
    expectPastDay(
      await grpcJs.unary(
        AdminService.method.getUsage,
        { date: pastDay },
        { metadata: { ...bearer(opsKey), "x-test-call": "grpc-js" } },
      ),
    );
    expect(servedBy.get("grpc-js")).toBe("lane");
    const denied = toConnectError(
      await grpcJs.unary(AdminService.method.getUsage, {}, { metadata: { "x-api-key": teamKey } }).catch((e: unknown) => e),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ADMIN_ONLY");
    const anonymous = toConnectError(await grpcJs.unary(AdminService.method.getUsage, {}).catch((e: unknown) => e));
    expect(anonymous.code).toBe(Code.Unauthenticated);
  });

  it("health and reflection list sluice.v1.AdminService", async () => {
    expect((await grpcJs.unary(Health.method.check, { service: "sluice.v1.AdminService" })).status).toBe(ServingStatus.SERVING);
    const call = grpcJs.bidiStream(reflectionV1.ServerReflection.method.serverReflectionInfo);
    const responses: reflectionV1.ServerReflectionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (r: reflectionV1.ServerReflectionResponse) => responses.push(r));
      call.on("end", resolve);
      call.on("error", reject);
    });
    call.write(
      create(reflectionV1.ServerReflectionRequestSchema, { host: "", messageRequest: { case: "listServices", value: "" } }),
    );
    call.end();
    await done;
    const list = responses[0]?.messageResponse;
    const services = list?.case === "listServicesResponse" ? list.value.service.map((s) => s.name) : [];
    expect(services).toContain("sluice.v1.AdminService");
  });
});

describe("the usage ledger end to end", () => {
  it("a Complete call shows up in GetUsage", async () => {
    const transport = connectJsonTransport(gateway.url).transport;
    const answer = await createClient(ChatService, transport).complete(
      { model: "demo", messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "count me" } }] }] },
      { headers: { "x-api-key": teamKey } },
    );
    const admin = createClient(AdminService, transport);
    // A call's usage may be recorded just after its answer is sent: look for a while.
    let row: GetUsageResponse["rows"][number] | undefined;
    for (let tries = 0; row === undefined && tries < 50; tries++) {
      if (tries > 0) await sleep(20);
      const today = await admin.getUsage({ tenant: "team" }, { headers: bearer(opsKey) });
      row = today.rows.find((r) => r.model === "demo" && r.keyId === "ci");
    }
    expect(row, "a row for team's Complete call (is usage recording wired into the chat path?)").toBeDefined();
    expect(row).toMatchObject({ tenant: "team", keyId: "ci", model: "demo", deployment: "demo/sluice-demo-1", requests: 1n });
    expect(row?.inputTokens).toBe(BigInt(answer.usage?.inputTokens ?? 0));
    expect(row?.outputTokens).toBe(BigInt(answer.usage?.outputTokens ?? 0));
  });
});
