import { createServer } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { createConnectNodeHandler } from "../../src/server/connect-node-handler.js";
import { createRequestByteBudget, type RequestByteBudget } from "../../src/server/request-byte-budget.js";
import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { createSluice, type Sluice } from "../../src/app/create-sluice.js";
import { parseConfig } from "../../src/config/load-config.js";
import { createLogger } from "../../src/telemetry/logger.js";
import type { FastLane } from "../../src/server/fast-call.js";
import { createActiveCalls, type ActiveCalls } from "../../src/server/active-calls.js";
import { prepareLaneRoutes, type LaneRoutes } from "../../src/server/lane-routes.js";
import { registerRouteTable } from "../../src/server/route-table.js";

export interface LaneSetup {
  readonly sluice: Sluice;
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  readonly maxRequestBytes: number;
  readonly shutdownSignal: AbortSignal;
  /** The route table prepared for the lanes, as the server prepares it. */
  readonly routes: LaneRoutes;
  readonly active: ActiveCalls;
  readonly requestBytes: RequestByteBudget;
}

export interface LaneComparison {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** Paths of the requests the lane took (it declines by returning false). */
  readonly laneServed: string[];
  close(): Promise<void>;
}

/**
 * An HTTP/1.1 server where a fast lane and connect-node serve the same Sluice (demo
 * provider, no delays, 1 KiB request limit): `x-lane: general` forces connect-node,
 * anything else tries the lane — so a test sends one request both ways and compares.
 */
export async function startLaneComparison(createLane: (setup: LaneSetup) => FastLane): Promise<LaneComparison> {
  const config = parseConfig(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0, responseDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    },
    {},
  );
  const sluice = createSluice(config, { logger: createLogger({ level: "silent" }) });
  const jsonOptions = { ignoreUnknownFields: false };
  const shutdownSignal = new AbortController().signal;
  const setup: LaneSetup = {
    sluice,
    jsonOptions,
    maxRequestBytes: 1024,
    shutdownSignal,
    routes: prepareLaneRoutes(sluice.routes, jsonOptions),
    active: createActiveCalls(shutdownSignal),
    requestBytes: createRequestByteBudget(64 * 1024 * 1024),
  };
  // connect-node as the server configures it (strict UTF-8, request compressions, deadline clamp).
  const general = createConnectNodeHandler({
    routes: (router) => registerRouteTable(router, sluice.routes),
    jsonOptions: setup.jsonOptions,
    readMaxBytes: setup.maxRequestBytes,
    shutdownSignal: setup.shutdownSignal,
    maxDeadlineMs: 2_147_483_647,
  });
  const lane = createLane(setup);
  const laneServed: string[] = [];
  const server = createServer((req, res) => {
    if (req.headers["x-lane"] !== "general" && lane(req, res)) {
      laneServed.push(req.url ?? "");
      return;
    }
    general(req, res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    laneServed,
    async close() {
      server.closeAllConnections();
      server.close();
      await sluice.close();
    },
  };
}
