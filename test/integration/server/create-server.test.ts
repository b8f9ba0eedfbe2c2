import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { ChatService } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { createSluice } from "../../../src/app/create-sluice.js";
import { parseConfig } from "../../../src/config/load-config.js";
import { createLogger } from "../../../src/telemetry/logger.js";
import { createSluiceServer } from "../../../src/server/create-server.js";
import { grpcH2Transport } from "../../helpers/protocol-clients.js";
import { selfSignedCert } from "../../helpers/self-signed-cert.js";

const demoDocument = {
  providers: { demo: { type: "demo", wordDelayMs: 0, responseDelayMs: 30 } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
};
const hello = {
  model: "demo",
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hi" } }] }],
};

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const done of cleanup.splice(0).reverse()) await done();
});

function build(document: Record<string, unknown>) {
  const config = parseConfig({ listen: "127.0.0.1:0", ...document }, {});
  const logger = createLogger({ level: "silent" });
  const sluice = createSluice(config, { logger });
  const server = createSluiceServer({ config, routes: sluice.routes, healthDetails: sluice.healthDetails, logger });
  cleanup.push(() => sluice.close());
  cleanup.push(() => server.shutdown());
  return server;
}

describe("createSluiceServer", () => {
  it("with server.tls: an https URL, gRPC over HTTP/2 with ALPN", async () => {
    const { certFile, keyFile, remove } = selfSignedCert();
    cleanup.push(() => remove());
    const server = build({ ...demoDocument, server: { tls: { certFile, keyFile } } });
    const { url } = await server.listen();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const sessionManager = new Http2SessionManager(url, {}, { ca: readFileSync(certFile) });
    cleanup.push(() => sessionManager.abort());
    const client = createClient(ChatService, createGrpcTransport({ baseUrl: url, sessionManager }));
    expect((await client.complete(hello)).provider).toBe("demo");
  });

  it("many concurrent calls: no listener warning, and in-flight counts back to zero", async () => {
    const server = build(demoDocument);
    const { url } = await server.listen();
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on("warning", onWarning);
    cleanup.push(() => process.off("warning", onWarning));
    const transport = grpcH2Transport(url);
    cleanup.push(() => transport.close());
    const client = createClient(ChatService, transport.transport);
    const answers = await Promise.all(Array.from({ length: 40 }, () => client.complete(hello)));
    expect(answers.every((a) => a.provider === "demo")).toBe(true);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    expect(server.inFlight).toBe(0);
  });

  it("shutdown is idempotent, and listen after shutdown is refused", async () => {
    const server = build(demoDocument);
    await server.listen();
    const first = server.shutdown("one");
    expect(server.shutdown("two")).toBe(first);
    await first;
    await expect(server.listen()).rejects.toThrow(/after shutdown/);
  });
});
