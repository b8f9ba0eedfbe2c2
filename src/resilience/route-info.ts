import { CacheStatus, type RouteInfo } from "../../gen/sluice/v1/chat_service_pb.js";
import type { Candidate } from "../routing/candidate.js";
import type { ModelRoute } from "../routing/model-catalog.js";

/** How a call was served: the deployment that answered, after how many attempts, by fallback or hedge. */
export function routeInfo(candidate: Candidate, requested: ModelRoute, attempts: number, hedged: boolean): RouteInfo {
  return {
    $typeName: "sluice.v1.RouteInfo",
    provider: candidate.deployment.provider.name,
    upstreamModel: candidate.deployment.model,
    attempts,
    fallbackModel: candidate.route === requested ? "" : candidate.route.alias,
    degraded: false,
    hedged,
    cacheStatus: CacheStatus.UNSPECIFIED,
  };
}

/** The route of a degraded answer, when the alias has one configured. */
export function degradedRoute(requested: ModelRoute, attempts: number): RouteInfo | undefined {
  if (requested.config.degraded === undefined) return undefined;
  return {
    $typeName: "sluice.v1.RouteInfo",
    provider: "sluice",
    upstreamModel: "degraded",
    attempts,
    fallbackModel: "",
    degraded: true,
    hedged: false,
    cacheStatus: CacheStatus.UNSPECIFIED,
  };
}

/** RouteInfo as `sluice-*` headers (unary) or trailers (streams), for callers that read metadata, not bodies. */
export function setRouteHeaders(target: Headers, route: RouteInfo): void {
  target.set("sluice-provider", route.provider);
  target.set("sluice-upstream-model", route.upstreamModel);
  target.set("sluice-attempts", String(route.attempts));
  if (route.fallbackModel !== "") target.set("sluice-fallback-model", route.fallbackModel);
  if (route.degraded) target.set("sluice-degraded", "true");
  if (route.hedged) target.set("sluice-hedged", "true");
}
