import { createMethodImplSpec, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { AdminService } from "../../gen/sluice/v1/admin_service_pb.js";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import type { RouteTable } from "../server/route-table.js";

export interface RouteTableDeps {
  readonly chat: ServiceImpl<typeof ChatService>;
  readonly models: ServiceImpl<typeof ModelService>;
  readonly admin: ServiceImpl<typeof AdminService>;
  /** The one interceptor chain, outermost first (src/interceptors/index.ts). */
  readonly interceptors: readonly Interceptor[];
}

/**
 * THE route table: every sluice.v1 RPC Sluice serves, each once. connect-node's router
 * and every fast lane read this list; a new RPC added here is served over every protocol
 * and lane, behind the same interceptors.
 */
export function createRouteTable(deps: RouteTableDeps): RouteTable {
  const { chat, models, admin } = deps;
  return {
    services: [ChatService, ModelService, AdminService],
    rpcs: [
      createMethodImplSpec(ChatService.method.complete, chat.complete),
      createMethodImplSpec(ChatService.method.streamComplete, chat.streamComplete),
      createMethodImplSpec(ModelService.method.listModels, models.listModels),
      createMethodImplSpec(AdminService.method.getUsage, admin.getUsage),
      createMethodImplSpec(AdminService.method.purgeCache, admin.purgeCache),
    ],
    interceptors: deps.interceptors,
  };
}
