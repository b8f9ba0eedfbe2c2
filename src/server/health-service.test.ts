import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckRequestSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthService, ServingStatus } from "./health-service.js";

function setup() {
  const health = createHealthService({ services: ["sluice.v1.ChatService"] });
  const client = createClient(
    Health,
    createRouterTransport((router) => health.register(router)),
  );
  return { health, client };
}

describe("grpc.health.v1.Health", () => {
  it('Check: SERVING for the server ("") and each served service; NOT_FOUND otherwise', async () => {
    const { client } = setup();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await client.check({ service: "sluice.v1.ChatService" })).status).toBe(ServingStatus.SERVING);
    await expect(client.check({ service: "nope.Service" })).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("List: every service's status", async () => {
    const { client } = setup();
    const { statuses } = await client.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "sluice.v1.ChatService": ServingStatus.SERVING,
    });
  });

  it("Watch: current status first, then each change; drain makes everything NOT_SERVING for good", async () => {
    const { health, client } = setup();
    const seen: ServingStatus[] = [];
    const abort = new AbortController();
    const stream = client.watch({ service: "sluice.v1.ChatService" }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    seen.push((await iterator.next()).value!.status);
    health.setStatus("sluice.v1.ChatService", ServingStatus.NOT_SERVING);
    seen.push((await iterator.next()).value!.status);
    health.setStatus("sluice.v1.ChatService", ServingStatus.SERVING);
    seen.push((await iterator.next()).value!.status);
    health.drain();
    seen.push((await iterator.next()).value!.status);
    health.setStatus("sluice.v1.ChatService", ServingStatus.SERVING);
    expect(health.status("sluice.v1.ChatService")).toBe(ServingStatus.NOT_SERVING);
    expect(health.status("")).toBe(ServingStatus.NOT_SERVING);
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    abort.abort();
    await expect(iterator.next()).rejects.toMatchObject({ code: Code.Canceled });
  });

  it("Watch: SERVICE_UNKNOWN for an unknown service, then its status once it is registered", async () => {
    const { health, client } = setup();
    const iterator = client.watch({ service: "later.Service" })[Symbol.asyncIterator]();
    expect((await iterator.next()).value!.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    health.setStatus("later.Service", ServingStatus.SERVING);
    expect((await iterator.next()).value!.status).toBe(ServingStatus.SERVING);
    await iterator.return?.();
  });

  it("Watch ends with the abort reason of its signal (the server's shutdown error)", async () => {
    const { health } = setup();
    const controller = new AbortController();
    const context = { signal: controller.signal } as HandlerContext;
    const watch = health.impl.watch!(create(HealthCheckRequestSchema, { service: "" }), context);
    const iterator = watch[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toMatchObject({ status: ServingStatus.SERVING });
    const next = iterator.next();
    controller.abort(new ConnectError("server is shutting down", Code.Unavailable));
    await expect(next).rejects.toMatchObject({ code: Code.Unavailable, rawMessage: "server is shutting down" });
  });
});
