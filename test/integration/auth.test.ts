import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "undici";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import { createGrpcJsClient, grpcWebTransport, connectJsonTransport, toConnectError } from "../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

const keyA = "sk-sluice-PLANTED-team-a-6f1d0c9b8a7e6d5c4b3a2f1e";
const keyB = "sk-sluice-PLANTED-team-b-0a1b2c3d4e5f6a7b8c9d0e1f";
const expiredKey = "sk-sluice-PLANTED-expired-99887766554433221100";
const elsewhereKey = "sk-sluice-PLANTED-elsewhere-1234567890abcdef12";
const keyC = "sk-sluice-PLANTED-team-c-77665544332211009988aabb";

const document = {
  providers: { demo: { type: "demo", wordDelayMs: 0 } },
  models: {
    demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    "gpt-4o": {
      deployments: [
        { provider: "demo", model: "sluice-demo-1" },
        { provider: "demo", model: "sluice-demo-team-a" },
      ],
      // Team A's calls go to a deployment of their own; everyone else's to the first.
      routes: [{ match: { tenant: "team-a" }, deployments: ["demo/sluice-demo-team-a"] }],
    },
    "gpt-4o-mini": { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    claude: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
  },
  tenants: {
    "team-a": {
      apiKeys: [
        { sha256: apiKeyHash(keyA), id: "ci" },
        { sha256: apiKeyHash(expiredKey), id: "old", expiresAt: "2020-01-01T00:00:00Z" },
      ],
      models: ["gpt-4o*", "demo"],
    },
    "team-b": { apiKeys: [{ sha256: apiKeyHash(keyB) }], models: ["claude"] },
    "team-c": { apiKeys: [{ sha256: apiKeyHash(keyC) }], models: ["gpt-4o"] },
    // Its key works only from 10.0.0.0/8: never from this test's loopback.
    remote: { apiKeys: [{ sha256: apiKeyHash(elsewhereKey), id: "remote" }], models: ["*"], allowFrom: ["10.0.0.0/8"] },
  },
};

const ask = (model: string) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hello" } }] }],
});

let gateway: StartedSluice;
let log: CapturedLogger;
beforeAll(async () => {
  log = createCapturedLogger("debug");
  gateway = await startSluice(document, { logger: log.logger });
});
afterAll(() => gateway.close());

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** The error of a call that must fail. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

describe.each([
  ["Connect JSON", () => connectJsonTransport(gateway.url).transport],
  ["gRPC-Web", () => grpcWebTransport(gateway.url).transport],
])("API keys over %s", (_protocol, transportOf) => {
  let transport: Transport;
  beforeAll(() => {
    transport = transportOf();
  });

  it("a tenant's key calls its models, by bearer token or x-api-key", async () => {
    const chat = createClient(ChatService, transport);
    const viaBearer = await chat.complete(ask("gpt-4o-mini"), { headers: bearer(keyA) });
    expect(viaBearer.provider).toBe("demo");
    const viaHeader = await chat.complete(ask("claude"), { headers: { "x-api-key": keyB } });
    expect(viaHeader.provider).toBe("demo");
    const events = [];
    for await (const event of chat.streamComplete(ask("demo"), { headers: bearer(keyA) })) events.push(event.event.case);
    expect(events.at(-1)).toBe("done");
  });

  it.each([
    ["no credentials", {}],
    ["an unknown key", bearer("sk-sluice-nobody-knows-this-one")],
    ["a valid key's prefix", bearer(keyA.slice(0, 20))],
    ["a valid key with a suffix", bearer(`${keyA}0`)],
    ["the key in another header", { "api-key": keyA }],
    ["the key as Basic credentials", { authorization: `Basic ${keyA}` }],
    ["an expired key", bearer(expiredKey)],
    ["a key used from an address its tenant does not allow", bearer(elsewhereKey)],
  ])("refuses %s: UNAUTHENTICATED, one message for all", async (_name, headers) => {
    const chat = createClient(ChatService, transport);
    for (const call of [chat.complete(ask("demo"), { headers }), drain(chat.streamComplete(ask("demo"), { headers }))]) {
      const err = await failure(call);
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toBe(
        "missing or invalid credentials: send 'authorization: Bearer API_KEY_OR_TOKEN' or 'x-api-key: API_KEY'",
      );
      expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UNAUTHENTICATED");
    }
    await expect(createClient(ModelService, transport).listModels({}, { headers })).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("a model outside the tenant's list: PERMISSION_DENIED, alike whether it exists or not", async () => {
    const chat = createClient(ChatService, transport);
    for (const model of ["claude", "no-such-model"]) {
      const err = await failure(chat.complete(ask(model), { headers: bearer(keyA) }));
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toBe(`model "${model}" is not available to this caller (see ModelService.ListModels)`);
      expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("MODEL_NOT_ALLOWED");
    }
    // Tenant A's key on tenant B's model, on a stream too.
    const streamed = await failure(drain(chat.streamComplete(ask("claude"), { headers: bearer(keyA) })));
    expect(streamed.code).toBe(Code.PermissionDenied);
    // Within its list, an alias that does not exist is still NOT_FOUND.
    expect((await failure(chat.complete(ask("gpt-4o-nano"), { headers: bearer(keyA) }))).code).toBe(Code.NotFound);
  });

  it("ListModels shows each tenant only its own models", async () => {
    const models = createClient(ModelService, transport);
    const a = await models.listModels({}, { headers: bearer(keyA) });
    expect(a.models.map((m) => m.alias)).toEqual(["demo", "gpt-4o", "gpt-4o-mini"]);
    const b = await models.listModels({}, { headers: { "x-api-key": keyB } });
    expect(b.models.map((m) => m.alias)).toEqual(["claude"]);
  });
});

async function drain(events: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of events) void _;
}

describe("API keys over gRPC (grpc-js)", () => {
  it("authenticates from metadata; refuses a missing key, a wrong one and another tenant's model", async () => {
    const client = createGrpcJsClient(gateway.url);
    try {
      const answer = await client.unary(ChatService.method.complete, ask("gpt-4o"), { metadata: bearer(keyA) });
      expect(answer.provider).toBe("demo");
      const missing = await client.unary(ChatService.method.complete, ask("gpt-4o")).then(
        () => undefined,
        (e: unknown) => toConnectError(e),
      );
      expect(missing?.code).toBe(Code.Unauthenticated);
      const wrong = await client
        .unary(ChatService.method.complete, ask("gpt-4o"), { metadata: { "x-api-key": `${keyA}x` } })
        .then(
          () => undefined,
          (e: unknown) => toConnectError(e),
        );
      expect(wrong?.code).toBe(Code.Unauthenticated);
      const denied = await client.unary(ChatService.method.complete, ask("claude"), { metadata: bearer(keyA) }).then(
        () => undefined,
        (e: unknown) => toConnectError(e),
      );
      expect(denied?.code).toBe(Code.PermissionDenied);
    } finally {
      client.close();
    }
  });
});

describe("Connect JSON over plain HTTP", () => {
  it("401 without credentials, 403 for a model outside the list, 200 with the key", async () => {
    const post = (headers: Record<string, string>, model: string) =>
      request(`${gateway.url}/sluice.v1.ChatService/Complete`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model, messages: [{ role: "ROLE_USER", content: [{ text: "hi" }] }] }),
      });
    const unauthenticated = await post({}, "demo");
    expect(unauthenticated.statusCode).toBe(401);
    expect(await unauthenticated.body.json()).toMatchObject({ code: "unauthenticated" });
    const denied = await post(bearer(keyB), "demo");
    expect(denied.statusCode).toBe(403);
    expect(await denied.body.json()).toMatchObject({ code: "permission_denied" });
    const ok = await post(bearer(keyB), "claude");
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });
});

describe("routing by tenant", () => {
  it("a route matching the tenant sends its calls to that route's deployments; other tenants get the rest", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    for (let i = 0; i < 3; i++) {
      const teamA = await chat.complete(ask("gpt-4o"), { headers: bearer(keyA) });
      expect(teamA.route?.upstreamModel).toBe("sluice-demo-team-a");
      const teamC = await chat.complete(ask("gpt-4o"), { headers: bearer(keyC) });
      expect(teamC.route?.upstreamModel).toBe("sluice-demo-1");
    }
  });
});

describe("what is logged", () => {
  it("the tenant and key id of each call, why a call was refused — and never a key", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    await chat.complete(ask("demo"), { headers: { ...bearer(keyA), "x-request-id": "auth-ok" } });
    await failure(chat.complete(ask("demo"), { headers: { ...bearer(expiredKey), "x-request-id": "auth-expired" } }));
    await failure(chat.complete(ask("demo"), { headers: { ...bearer(elsewhereKey), "x-request-id": "auth-address" } }));
    const line = (id: string) => log.withMessage("rpc").find((l) => l["requestId"] === id);
    await waitUntil(() => line("auth-address") !== undefined, "the access lines");
    expect(line("auth-ok")).toMatchObject({ code: "ok", tenant: "team-a", keyId: "ci" });
    expect(line("auth-expired")).toMatchObject({ code: "unauthenticated", authRefusal: "expired" });
    expect(line("auth-address")).toMatchObject({ code: "unauthenticated", authRefusal: "address", tenant: "remote" });
    const logged = JSON.stringify(log.lines);
    for (const key of [keyA, keyB, expiredKey, elsewhereKey]) expect(logged).not.toContain(key);
  });

  it("metrics count calls per configured tenant, a bounded label", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    await chat.complete(ask("claude"), { headers: { "x-api-key": keyB } });
    const exposition = await (await request(`${gateway.url}/metrics`)).body.text();
    const okCount = /^sluice_tenant_requests_total\{tenant="team-b",code="ok"\} (\d+)$/m.exec(exposition)?.[1];
    expect(Number(okCount)).toBeGreaterThanOrEqual(1);
    expect(exposition).not.toMatch(/tenant="(?!team-a"|team-b"|team-c"|remote")/);
    for (const key of [keyA, keyB]) expect(exposition).not.toContain(key);
  });
});

/** The same aliases without the route pinned to a tenant (no tenants here to name). */
const anonymousModels = { ...document.models, "gpt-4o": { deployments: document.models["gpt-4o"].deployments } };

describe("anonymous serving", () => {
  it("with no tenants, calls are anonymous and every model is listed", async () => {
    const open = await startSluice({ providers: document.providers, models: anonymousModels });
    try {
      const models = await createClient(ModelService, connectJsonTransport(open.url).transport).listModels({});
      expect(models.models).toHaveLength(4);
    } finally {
      await open.close();
    }
  });

  it("auth.allowFrom refuses addresses outside it even without tenants", async () => {
    const fenced = await startSluice({
      providers: document.providers,
      models: anonymousModels,
      auth: { allowFrom: ["10.0.0.0/8"] },
    });
    try {
      const chat = createClient(ChatService, connectJsonTransport(fenced.url).transport);
      expect((await failure(chat.complete(ask("demo")))).code).toBe(Code.Unauthenticated);
    } finally {
      await fenced.close();
    }
  });
});
