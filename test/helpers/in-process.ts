import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { createSluice, type Sluice } from "../../src/app/create-sluice.js";
import { parseConfig } from "../../src/config/load-config.js";
import { createLogger } from "../../src/telemetry/logger.js";
import { registerRouteTable } from "../../src/server/route-table.js";

export interface InProcessSluice {
  readonly sluice: Sluice;
  readonly chat: Client<typeof ChatService>;
  readonly models: Client<typeof ModelService>;
}

/**
 * The real services behind an in-memory Connect transport (no sockets): service-level
 * tests exercise validation, routing, providers and the interceptor chain exactly as
 * the server runs them.
 */
export function createInProcessSluice(configDocument?: Record<string, unknown>): InProcessSluice {
  const config = parseConfig(configDocument, {});
  const sluice = createSluice(config, { logger: createLogger({ level: "silent" }) });
  const transport = createRouterTransport((router) => registerRouteTable(router, sluice.routes));
  return {
    sluice,
    chat: createClient(ChatService, transport),
    models: createClient(ModelService, transport),
  };
}
