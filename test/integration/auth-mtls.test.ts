import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import { type CertFiles, createTestCa, type TestCa } from "../helpers/client-certs.js";
import { createGrpcJsClient, toConnectError } from "../helpers/protocol-clients.js";
import { selfSignedCert, type SelfSignedCert } from "../helpers/self-signed-cert.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

const keyB = "sk-sluice-PLANTED-mtls-billing-0a1b2c3d4e5f6a7b8c9d";

const ask = (model: string) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hello" } }] }],
});

let serverCert: SelfSignedCert;
let ca: TestCa;
let otherCa: TestCa;
/** Signed by the configured CA: a SPIFFE id naming team-a; CN billing; CN nobody (no tenant). */
let teamA: CertFiles;
let billing: CertFiles;
let nobody: CertFiles;
/** Signed by another CA, with team-a's SPIFFE id and billing's CN. */
let impostor: CertFiles;
let log: CapturedLogger;
let gateway: StartedSluice;
/** The same configuration served by connect-node alone (no fast lanes). */
let slow: StartedSluice;

function documentFor(): Record<string, unknown> {
  return {
    providers: { demo: { type: "demo", wordDelayMs: 0 } },
    models: {
      demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
      claude: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    },
    server: { tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, clientCaFile: ca.certFile } },
    tenants: {
      "team-a": { models: ["demo"], mtls: { uris: ["spiffe://example.org/team-a"] } },
      billing: { apiKeys: [{ sha256: apiKeyHash(keyB), id: "ci" }], models: ["claude"], mtls: { subjects: ["billing"] } },
    },
  };
}

beforeAll(async () => {
  serverCert = selfSignedCert();
  ca = createTestCa("sluice-test-clients");
  otherCa = createTestCa("someone-else");
  teamA = ca.issueClient("team-a", "team-a-workload", "spiffe://example.org/team-a");
  billing = ca.issueClient("billing", "billing");
  nobody = ca.issueClient("nobody", "nobody", "spiffe://example.org/nobody");
  impostor = otherCa.issueClient("impostor", "billing", "spiffe://example.org/team-a");
  log = createCapturedLogger("debug");
  gateway = await startSluice(documentFor(), { logger: log.logger });
  slow = await startSluice(documentFor(), { logger: log.logger, fastLanes: false });
});
afterAll(async () => {
  await gateway?.close();
  await slow?.close();
  serverCert?.remove();
  ca?.remove();
  otherCa?.remove();
});

const read = (file: string) => readFileSync(file);
const tlsOptions = (client: CertFiles | undefined) => ({
  ca: read(serverCert.certFile),
  ...(client === undefined ? {} : { cert: read(client.certFile), key: read(client.keyFile) }),
});

const sessions: Http2SessionManager[] = [];
afterAll(() => {
  for (const session of sessions) session.abort();
});

/** Connect JSON over HTTP/1.1 (TLS), binary over HTTP/2 (TLS, ALPN), or gRPC-Web over HTTP/1.1, with or without a client certificate. */
function transportFor(url: string, kind: "connect-1.1" | "connect-2" | "grpc-web", client: CertFiles | undefined): Transport {
  if (kind === "grpc-web") {
    return createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ...tlsOptions(client), agent: false } });
  }
  if (kind === "connect-1.1") {
    return createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ...tlsOptions(client), agent: false } });
  }
  const sessionManager = new Http2SessionManager(url, {}, tlsOptions(client));
  sessions.push(sessionManager);
  return createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, sessionManager });
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return call.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
}

describe.each([
  ["Connect HTTP/1.1, fast lanes", () => gateway, "connect-1.1"],
  ["Connect HTTP/2, fast lanes", () => gateway, "connect-2"],
  ["gRPC-Web HTTP/1.1, fast lanes", () => gateway, "grpc-web"],
  ["Connect HTTP/1.1, connect-node", () => slow, "connect-1.1"],
  ["Connect HTTP/2, connect-node", () => slow, "connect-2"],
  ["gRPC-Web HTTP/1.1, connect-node", () => slow, "grpc-web"],
] as const)("mTLS over %s", (_name, gatewayOf, kind) => {
  const chatWith = (client: CertFiles | undefined) => createClient(ChatService, transportFor(gatewayOf().url, kind, client));

  it("a certificate naming a tenant (URI SAN or CN) is that tenant", async () => {
    expect((await chatWith(teamA).complete(ask("demo"))).provider).toBe("demo");
    expect((await chatWith(billing).complete(ask("claude"))).provider).toBe("demo");
  });

  it.each([
    ["no certificate", () => undefined],
    ["a certificate from another CA", () => impostor],
    ["a verified certificate that names no tenant", () => nobody],
  ])("refuses %s: UNAUTHENTICATED", async (_case, clientOf) => {
    expect((await failure(chatWith(clientOf()).complete(ask("demo")))).code).toBe(Code.Unauthenticated);
  });

  it("the tenant's models apply: another model is PERMISSION_DENIED", async () => {
    expect((await failure(chatWith(teamA).complete(ask("claude")))).code).toBe(Code.PermissionDenied);
  });

  it("an API key, when presented, decides: billing's key with team-a's certificate is billing", async () => {
    const answer = await chatWith(teamA).complete(ask("claude"), { headers: { authorization: `Bearer ${keyB}` } });
    expect(answer.provider).toBe("demo");
    expect((await failure(chatWith(teamA).complete(ask("demo"), { headers: { "x-api-key": "sk-wrong" } }))).code).toBe(
      Code.Unauthenticated,
    );
  });
});

describe("mTLS over grpc-js (gRPC lane)", () => {
  const grpcClient = (client: CertFiles | undefined) => {
    const credentials =
      client === undefined
        ? grpc.credentials.createSsl(read(serverCert.certFile))
        : grpc.credentials.createSsl(read(serverCert.certFile), read(client.keyFile), read(client.certFile));
    return createGrpcJsClient(gateway.url, {}, credentials);
  };
  const complete = async (client: CertFiles | undefined, model: string) => {
    const caller = grpcClient(client);
    try {
      return await caller.unary(ChatService.method.complete, ask(model));
    } finally {
      caller.raw.close();
    }
  };

  it("the tenant's certificate: OK; none, or another CA's: UNAUTHENTICATED; another model: PERMISSION_DENIED", async () => {
    expect((await complete(teamA, "demo")).provider).toBe("demo");
    expect((await complete(billing, "claude")).provider).toBe("demo");
    const code = (call: Promise<unknown>) =>
      call.then(
        () => "ok",
        (err: unknown) => toConnectError(err).code,
      );
    expect(await code(complete(undefined, "demo"))).toBe(Code.Unauthenticated);
    expect(await code(complete(impostor, "demo"))).toBe(Code.Unauthenticated);
    expect(await code(complete(teamA, "claude"))).toBe(Code.PermissionDenied);
  });
});

describe("what is logged", () => {
  it("the tenant and the certificate name matched; why a certificate was refused", async () => {
    const chat = (client: CertFiles | undefined) => createClient(ChatService, transportFor(gateway.url, "connect-1.1", client));
    await chat(teamA).complete(ask("demo"), { headers: { "x-request-id": "mtls-uri" } });
    await chat(billing).complete(ask("claude"), { headers: { "x-request-id": "mtls-cn" } });
    await failure(chat(impostor).complete(ask("demo"), { headers: { "x-request-id": "mtls-impostor" } }));
    await failure(chat(nobody).complete(ask("demo"), { headers: { "x-request-id": "mtls-nobody" } }));
    await failure(chat(undefined).complete(ask("demo"), { headers: { "x-request-id": "mtls-none" } }));
    const line = (id: string) => log.withMessage("rpc").find((l) => l["requestId"] === id);
    await waitUntil(() => line("mtls-none") !== undefined, "the access lines");
    expect(line("mtls-uri")).toMatchObject({ code: "ok", tenant: "team-a", keyId: "spiffe://example.org/team-a" });
    expect(line("mtls-cn")).toMatchObject({ code: "ok", tenant: "billing", keyId: "CN=billing" });
    expect(line("mtls-impostor")).toMatchObject({ code: "unauthenticated", authRefusal: "mtls_unverified" });
    expect(line("mtls-nobody")).toMatchObject({ code: "unauthenticated", authRefusal: "mtls_unknown" });
    expect(line("mtls-none")).toMatchObject({ code: "unauthenticated", authRefusal: "missing" });
  });
});

describe("configuration", () => {
  it("a clientCaFile that does not read stops startup, naming the file", async () => {
    const document = documentFor();
    const missing = `${ca.certFile}.missing`;
    (document["server"] as { tls: Record<string, string> }).tls.clientCaFile = missing;
    await expect(startSluice(document)).rejects.toThrow(missing);
  });
});
