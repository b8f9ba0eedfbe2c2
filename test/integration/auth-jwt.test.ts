import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from "jose";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { type CapturedLogger, createCapturedLogger } from "../helpers/captured-logger.js";
import { connectJsonTransport, createGrpcJsClient, grpcWebTransport, toConnectError } from "../helpers/protocol-clients.js";
import { type StartedSluice, startSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

const issuer = "https://idp.example.com/";
const audience = "sluice";
const apiKey = "sk-sluice-PLANTED-jwt-suite-0a1b2c3d4e5f6a7b8c9d";

interface Pair {
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
}

let rsa: Pair;
let rsaNext: Pair;
let attacker: Pair;
let ec: Pair;

async function publicJwk(pair: Pair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" };
}

const nowSec = () => Math.floor(Date.now() / 1_000);

interface SignOptions {
  readonly key?: CryptoKey | Uint8Array;
  readonly alg?: string;
  readonly kid?: string;
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** A token for tenant team-a (defaults), each one unique (jti) so no test reuses another's cached verification. */
async function sign(options: SignOptions = {}): Promise<string> {
  const claims = {
    tenant: "team-a",
    sub: "svc-batch",
    iss: issuer,
    aud: audience,
    iat: nowSec(),
    exp: nowSec() + 600,
    jti: crypto.randomUUID(),
    ...options.claims,
  };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? "RS256", kid: options.kid ?? "rsa-1" })
    .sign(options.key ?? rsa.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const ask = (model: string) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hello" } }] }],
});

function document(jwt: Record<string, unknown>) {
  return {
    providers: { demo: { type: "demo", wordDelayMs: 0 } },
    models: {
      demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
      claude: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    },
    tenants: {
      "team-a": { apiKeys: [{ sha256: apiKeyHash(apiKey), id: "ci" }], models: ["demo"] },
      "team-b": { models: ["claude"] },
    },
    auth: { jwt: { algorithms: ["RS256", "ES256"], issuer, audience, ...jwt } },
  };
}

/** Every token this file signs: none may reach a log line. */
const signed: string[] = [];
async function token(options: SignOptions = {}): Promise<string> {
  const t = await sign(options);
  signed.push(t);
  return t;
}

/** The identity provider's JWKS endpoint: serves whatever `keys` holds now. */
let keys: JWK[] = [];
let jwksFetches = 0;
let idp: Server;
let gateway: StartedSluice;
let log: CapturedLogger;

beforeAll(async () => {
  [rsa, rsaNext, attacker, ec] = await Promise.all([
    generateKeyPair("RS256"),
    generateKeyPair("RS256"),
    generateKeyPair("RS256"),
    generateKeyPair("ES256"),
  ]);
  keys = [await publicJwk(rsa, "rsa-1", "RS256"), await publicJwk(ec, "ec-1", "ES256")];
  idp = createServer((_req, res) => {
    jwksFetches++;
    res.writeHead(200, { "content-type": "application/jwk-set+json" }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
  const jwksUrl = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/.well-known/jwks.json`;
  log = createCapturedLogger("debug");
  // cooldownMs 0: a token with an unknown kid refetches at once (30 s in production).
  gateway = await startSluice(document({ jwksUrl, cooldownMs: 0 }), { logger: log.logger });
});

afterAll(async () => {
  await gateway?.close();
  await new Promise((resolve) => idp?.close(resolve));
});

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

async function drain(events: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of events) void _;
}

/** Each way a token must be refused, with the reason the access line gives. */
const bypasses: [string, () => Promise<string>, string][] = [
  ["an expired token", () => token({ claims: { exp: nowSec() - 120 } }), "jwt_expired"],
  ["a token not yet valid", () => token({ claims: { nbf: nowSec() + 300 } }), "jwt_not_yet_valid"],
  ["the wrong issuer", () => token({ claims: { iss: "https://evil.example.com/" } }), "jwt_claims"],
  ["the wrong audience", () => token({ claims: { aud: "another-service" } }), "jwt_claims"],
  ["the wrong signature", () => token({ key: attacker.privateKey }), "jwt_invalid"],
  [
    "alg: none",
    async () =>
      `${b64({ alg: "none", kid: "rsa-1" })}.${b64({ tenant: "team-a", iss: issuer, aud: audience, exp: nowSec() + 600 })}.`,
    "jwt_invalid",
  ],
  [
    "HS256 signed with the public key",
    async () => token({ alg: "HS256", key: new TextEncoder().encode(await exportSPKI(rsa.publicKey)) }),
    "jwt_invalid",
  ],
  ["an unknown kid", () => token({ key: attacker.privateKey, kid: "attacker-1" }), "jwt_unknown_key"],
  ["a tenant not configured", () => token({ claims: { tenant: "team-z" } }), "jwt_tenant"],
];

describe.each([
  ["Connect JSON", () => connectJsonTransport(gateway.url).transport],
  ["gRPC-Web", () => grpcWebTransport(gateway.url).transport],
])("JWTs over %s", (_protocol, transportOf) => {
  let transport: Transport;
  beforeAll(() => {
    transport = transportOf();
  });

  it("a valid token calls its tenant's models, unary and streaming; ListModels shows them", async () => {
    const chat = createClient(ChatService, transport);
    const t = await token();
    expect((await chat.complete(ask("demo"), { headers: bearer(t) })).provider).toBe("demo");
    const events = [];
    for await (const event of chat.streamComplete(ask("demo"), { headers: bearer(t) })) events.push(event.event.case);
    expect(events.at(-1)).toBe("done");
    const listed = await createClient(ModelService, transport).listModels(
      {},
      { headers: bearer(await token({ alg: "ES256", kid: "ec-1", key: ec.privateKey })) },
    );
    expect(listed.models.map((m) => m.alias)).toEqual(["demo"]);
    // The tenant's model list applies.
    expect((await failure(chat.complete(ask("claude"), { headers: bearer(t) }))).code).toBe(Code.PermissionDenied);
  });

  it.each(bypasses)("refuses %s: UNAUTHENTICATED, the one message", async (_name, make) => {
    const chat = createClient(ChatService, transport);
    const headers = bearer(await make());
    for (const call of [chat.complete(ask("demo"), { headers }), drain(chat.streamComplete(ask("demo"), { headers }))]) {
      const err = await failure(call);
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toBe(
        "missing or invalid credentials: send 'authorization: Bearer API_KEY_OR_TOKEN' or 'x-api-key: API_KEY'",
      );
      expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UNAUTHENTICATED");
    }
  });
});

describe("JWTs over gRPC (grpc-js)", () => {
  it("a valid token in metadata is accepted; every bypass is UNAUTHENTICATED", async () => {
    const client = createGrpcJsClient(gateway.url);
    try {
      const answer = await client.unary(ChatService.method.complete, ask("demo"), { metadata: bearer(await token()) });
      expect(answer.provider).toBe("demo");
      for (const [name, make] of bypasses) {
        const refused = await client.unary(ChatService.method.complete, ask("demo"), { metadata: bearer(await make()) }).then(
          () => undefined,
          (e: unknown) => toConnectError(e),
        );
        expect(refused?.code, name).toBe(Code.Unauthenticated);
      }
    } finally {
      client.close();
    }
  });
});

describe("Connect JSON over plain HTTP", () => {
  it("200 with a valid token, 401 with an expired one; an API key still works beside JWTs", async () => {
    const post = (headers: Record<string, string>) =>
      request(`${gateway.url}/sluice.v1.ChatService/Complete`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "hi" }] }] }),
      });
    const ok = await post(bearer(await token()));
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    const expired = await post(bearer(await token({ claims: { exp: nowSec() - 120 } })));
    expect(expired.statusCode).toBe(401);
    expect(await expired.body.json()).toMatchObject({ code: "unauthenticated" });
    const byKey = await post(bearer(apiKey));
    expect(byKey.statusCode).toBe(200);
    await byKey.body.dump();
  });
});

describe("key rotation at the JWKS URL", () => {
  it("a token signed by a key added to the JWKS is accepted without a restart; the old key still works", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const rotated = await token({ key: rsaNext.privateKey, kid: "rsa-2" });
    expect((await failure(chat.complete(ask("demo"), { headers: bearer(rotated) }))).code).toBe(Code.Unauthenticated);
    keys = [...keys, await publicJwk(rsaNext, "rsa-2", "RS256")];
    const before = jwksFetches;
    expect((await chat.complete(ask("demo"), { headers: bearer(rotated) })).provider).toBe("demo");
    expect(jwksFetches).toBe(before + 1); // refetched for the unknown kid
    expect((await chat.complete(ask("demo"), { headers: bearer(await token()) })).provider).toBe("demo");
  });
});

describe("what is logged", () => {
  it("the tenant and subject of each call, why a token was refused — and never a token", async () => {
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const cases: [string, string][] = [["jwt-ok", await token()]];
    for (const [, make, refusal] of bypasses) cases.push([`jwt-${refusal}-${cases.length}`, await make()]);
    for (const [id, t] of cases) {
      await chat.complete(ask("demo"), { headers: { ...bearer(t), "x-request-id": id } }).catch(() => undefined);
    }
    const line = (id: string) => log.withMessage("rpc").find((l) => l["requestId"] === id);
    await waitUntil(() => cases.every(([id]) => line(id) !== undefined), "the access lines");
    expect(line("jwt-ok")).toMatchObject({ code: "ok", tenant: "team-a", keyId: "svc-batch" });
    bypasses.forEach(([, , refusal], i) => {
      expect(line(`jwt-${refusal}-${i + 1}`)).toMatchObject({ code: "unauthenticated", authRefusal: refusal });
    });
    const logged = JSON.stringify(log.lines);
    for (const t of [...signed, ...cases.map(([, c]) => c)]) {
      expect(logged).not.toContain(t);
      expect(logged).not.toContain(t.split(".")[2] || t.split(".")[1]);
    }
  });
});

describe("a JWKS file", () => {
  it("rotated by rename is picked up by the running gateway; closing the gateway stops watching", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-jwt-it-"));
    const path = join(dir, "jwks.json");
    const write = (jwks: JWK[]) => {
      writeFileSync(`${path}.tmp`, JSON.stringify({ keys: jwks }));
      renameSync(`${path}.tmp`, path);
    };
    write([await publicJwk(rsa, "rsa-1", "RS256")]);
    const fileGateway = await startSluice(document({ jwksFile: path }));
    try {
      const chat = createClient(ChatService, connectJsonTransport(fileGateway.url).transport);
      expect((await chat.complete(ask("demo"), { headers: bearer(await token()) })).provider).toBe("demo");
      const rotated = await token({ key: rsaNext.privateKey, kid: "rsa-2" });
      expect((await failure(chat.complete(ask("demo"), { headers: bearer(rotated) }))).code).toBe(Code.Unauthenticated);
      write([await publicJwk(rsa, "rsa-1", "RS256"), await publicJwk(rsaNext, "rsa-2", "RS256")]);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const ok = await chat.complete(ask("demo"), { headers: bearer(rotated) }).then(
          () => true,
          () => false,
        );
        if (ok) break;
        if (Date.now() > deadline) throw new Error("the rotated JWKS file was not picked up within 10 s");
        await sleep(20);
      }
    } finally {
      await fileGateway.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("missing at startup: the gateway does not start, the error names the path", async () => {
    const path = join(tmpdir(), `sluice-no-such-jwks-${process.pid}.json`);
    await expect(startSluice(document({ jwksFile: path }))).rejects.toThrow(`auth.jwt.jwksFile: ${path} cannot be read`);
  });
});

describe("a JWKS URL that does not answer", () => {
  it("refuses tokens (UNAUTHENTICATED) and says why on the access line", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const captured = createCapturedLogger("debug");
    const down = await startSluice(document({ jwksUrl: `http://127.0.0.1:${port}/jwks` }), { logger: captured.logger });
    try {
      const chat = createClient(ChatService, connectJsonTransport(down.url).transport);
      const err = await failure(
        chat.complete(ask("demo"), { headers: { ...bearer(await token()), "x-request-id": "jwks-down" } }),
      );
      expect(err.code).toBe(Code.Unauthenticated);
      const line = () => captured.withMessage("rpc").find((l) => l["requestId"] === "jwks-down");
      await waitUntil(() => line() !== undefined, "the access line");
      expect(line()).toMatchObject({ authRefusal: "jwt_keys_unavailable" });
    } finally {
      await down.close();
    }
  });
});
