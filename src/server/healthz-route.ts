import type { HealthService } from "./health-service.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { NodeRequest, NodeResponse } from "./fast-call.js";

/** What /healthz reports beside the serving status (breaker states, in-flight counts). */
export type HealthDetails = () => Readonly<Record<string, unknown>>;

/**
 * `GET /healthz`: plain-HTTP health for load balancers and humans, beside the gRPC
 * health service — 200 while serving, 503 while draining — with each deployment's
 * circuit breaker state and the in-flight count of deployments with a `maxInFlight`, so an
 * operator sees at a glance which upstream is being skipped.
 */
export function createHealthzRoute(
  details: HealthDetails,
  health: HealthService,
): (req: NodeRequest, res: NodeResponse) => boolean {
  return (req, res) => {
    if (req.url !== "/healthz" || (req.method !== "GET" && req.method !== "HEAD")) return false;
    const serving = health.status("") === ServingStatus.SERVING;
    const body = JSON.stringify({
      status: serving ? "SERVING" : "NOT_SERVING",
      ...details(),
    });
    res.writeHead(serving ? 200 : 503, {
      "content-type": "application/json",
      "cache-control": "no-store",
      "content-length": String(Buffer.byteLength(body)),
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  };
}
