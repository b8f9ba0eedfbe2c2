import { once } from "node:events";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import type { DemoProvider } from "../../src/providers/demo/demo-provider.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { parseExposition, sampleValue } from "../helpers/metrics-exposition.js";
import { connectJsonTransport } from "../helpers/protocol-clients.js";

// Where the serving port answers the metrics (telemetry.metrics.expose / path), and that it
// still does at the concurrent-call cap, when they matter most.

const demo = {
  providers: { demo: { type: "demo" }, slow: { type: "demo", responseDelayMs: 60_000 } },
  models: {
    demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] },
    slow: { deployments: [{ provider: "slow", model: "thinking" }] },
  },
};
const hello = (model: string) => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: "hi" } }] }],
});

let gateway: StartedSluice | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

describe("metrics on the serving port", () => {
  it("GET and HEAD /metrics by default (a query string is ignored); POST is not a metrics request", async () => {
    gateway = await startSluice(demo);
    const get = await fetch(`${gateway.url}/metrics?from=prometheus`);
    expect(get.status).toBe(200);
    expect(get.headers.get("cache-control")).toBe("no-store");
    const body = await get.text();
    expect(body).toContain("# TYPE gen_ai_server_request_duration_seconds histogram");
    const head = await fetch(`${gateway.url}/metrics`, { method: "HEAD" });
    expect([head.status, await head.text()]).toEqual([200, ""]);
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(0);
    expect((await fetch(`${gateway.url}/metrics`, { method: "POST" })).status).not.toBe(200);
  });

  it("at telemetry.metrics.path when set, and nowhere with expose: off", async () => {
    gateway = await startSluice({ ...demo, telemetry: { metrics: { path: "/internal/prometheus" } } });
    expect((await fetch(`${gateway.url}/internal/prometheus`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(404);
    await gateway.close();

    gateway = await startSluice({ ...demo, telemetry: { metrics: { expose: "off" } } });
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(404);
  });

  it("answered at server.maxConcurrentCalls, showing the call in flight", async () => {
    gateway = await startSluice({ ...demo, server: { maxConcurrentCalls: 1 } });
    const slow = gateway.sluice.providers.get("slow") as DemoProvider;
    const started = once(slow.events, "started");
    const chat = createClient(ChatService, connectJsonTransport(gateway.url).transport);
    const holder = new AbortController();
    const held = chat.complete(hello("slow"), { signal: holder.signal }).catch(() => undefined);
    try {
      await started;
      const response = await fetch(`${gateway.url}/metrics`);
      expect(response.status).toBe(200);
      const samples = parseExposition(await response.text());
      expect(sampleValue(samples, "sluice_rpc_in_flight", { rpc: "sluice.v1.ChatService/Complete", protocol: "connect" })).toBe(
        1,
      );
      // An RPC is refused meanwhile: the cap is reached, and /metrics was still served.
      await expect(chat.complete(hello("demo"))).rejects.toThrow(/maxConcurrentCalls/);
    } finally {
      holder.abort();
      await held;
    }
  });
});
