import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { ListModelsResponseSchema, type ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import type { ModelCatalog } from "../routing/model-catalog.js";

/**
 * sluice.v1.ModelService. The catalog is fixed at startup, so the response is built once
 * and every call returns the same message.
 */
export function createModelService(catalog: ModelCatalog): ServiceImpl<typeof ModelService> {
  const response = create(ListModelsResponseSchema, {
    models: catalog.routes.map((route) => {
      const primary = route.deployments[0]!;
      return {
        alias: route.alias,
        provider: primary.provider.name,
        upstreamModel: primary.model,
        contextWindow: route.config.contextWindow ?? 0,
        capabilities: { ...route.config.capabilities },
        deployments: route.deployments.map((d) => ({
          provider: d.provider.name,
          upstreamModel: d.model,
          providerType: d.provider.type,
        })),
      };
    }),
  });
  return {
    listModels() {
      return response;
    },
  };
}
