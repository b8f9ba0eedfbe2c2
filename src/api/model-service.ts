import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ListModelsResponse, ListModelsResponseSchema, type ModelService } from "../../gen/sluice/v1/model_service_pb.js";
import { identityKey } from "../identity/identity.js";
import type { ModelCatalog } from "../routing/model-catalog.js";

/**
 * sluice.v1.ModelService. The catalog is fixed at startup, so the full response is built
 * once; a tenant sees only the aliases its `models` allow (built once per tenant and
 * kept: tenants are configured, a bounded set).
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
  const byTenant = new Map<string, ListModelsResponse>();
  return {
    listModels(_request, context) {
      const identity = context.values.get(identityKey);
      if (identity.tenant === "") return response;
      let own = byTenant.get(identity.tenant);
      if (own === undefined) {
        own = create(ListModelsResponseSchema, {
          models: response.models.filter((model) => identity.models.allows(model.alias)),
        });
        byTenant.set(identity.tenant, own);
      }
      return own;
    },
  };
}
