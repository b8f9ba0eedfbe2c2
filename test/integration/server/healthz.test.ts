import { afterEach, describe, expect, it } from "vitest";
import { http1Request, ordinaryCall } from "../../helpers/raw-http.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";

/*
 * GET /healthz on the serving port: the serving status for load balancers, and nothing
 * more unless the operator asks for it (`server.healthzDetails`) — deployment names and
 * breaker states are not for anyone who can reach the port. A query string is ignored.
 */

const started: StartedSluice[] = [];
afterEach(async () => {
  for (const sluice of started.splice(0)) await sluice.close();
});

async function start(server: Record<string, unknown> = {}): Promise<StartedSluice> {
  const sluice = await startSluice(undefined, { server });
  started.push(sluice);
  return sluice;
}

describe("/healthz", () => {
  it("by default: only the status", async () => {
    const sluice = await start();
    const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz" });
    expect(answer.status).toBe(200);
    expect(answer.headers["cache-control"]).toBe("no-store");
    expect(JSON.parse(answer.body.toString())).toEqual({ status: "SERVING" });
  });

  it("with server.healthzDetails: breaker states and in-flight counts too", async () => {
    const sluice = await start({ healthzDetails: true });
    // A deployment's breaker exists once it was called.
    await ordinaryCall(sluice.port);
    const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz" });
    expect(JSON.parse(answer.body.toString())).toMatchObject({
      status: "SERVING",
      breakers: { "demo/sluice-demo-1": "closed" },
      inFlight: {},
      // Where limits live and whether it answers (Redis: "degraded" while unreachable).
      state: { status: "ok", backend: "memory" },
    });
  });

  it.each(["/healthz?x=1", "/healthz?"])("%s is served as /healthz (GET and HEAD)", async (path) => {
    const sluice = await start();
    const get = await http1Request(sluice.port, { method: "GET", path });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body.toString())).toEqual({ status: "SERVING" });
    const head = await http1Request(sluice.port, { method: "HEAD", path });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it("while draining: 503 NOT_SERVING", async () => {
    const sluice = await start();
    sluice.server.health.drain();
    const answer = await http1Request(sluice.port, { method: "GET", path: "/healthz?probe=lb" });
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body.toString())).toEqual({ status: "NOT_SERVING" });
  });
});
