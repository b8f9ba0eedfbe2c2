import type { HealthService } from "./health-service.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { NodeRequest, NodeResponse } from "./fast-call.js";

/** What /healthz reports beside the serving status (breaker states, in-flight counts). */
export type HealthDetails = () => Readonly<Record<string, unknown>>;

export interface HealthzOptions {
  /**
   * `server.healthzDetails`: also report `details()`. Off by default — deployment names and
   * breaker states are for operators, not for anyone who can reach the serving port.
   */
  readonly details: boolean;
}

/**
 * `GET /healthz` (or HEAD; a query string is ignored, as load balancers add one): plain-HTTP
 * health for load balancers and humans, beside the gRPC health service — 200
 * `{"status":"SERVING"}` while serving, 503 `NOT_SERVING` while draining — and, with
 * `details`, each deployment's circuit breaker state and the in-flight count of deployments
 * with a `maxInFlight`, so an operator sees at a glance which upstream is being skipped, and
 * the serving process's `load` (calls in progress, the cap, the queue: create-server.ts).
 * Its status never follows the load: an overloaded replica is not pulled out of rotation.
 */
export function createHealthzRoute(
  details: HealthDetails,
  health: HealthService,
  options: HealthzOptions = { details: false },
): (req: NodeRequest, res: NodeResponse) => boolean {
  return (req, res) => {
    if (!isHealthzUrl(req.url) || (req.method !== "GET" && req.method !== "HEAD")) return false;
    const serving = health.status("") === ServingStatus.SERVING;
    const status = serving ? "SERVING" : "NOT_SERVING";
    const body = JSON.stringify(options.details ? { status, ...details() } : { status });
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

/** `/healthz`, with or without a query string (`/healthz?probe=lb`); not `/healthzz` or `/healthz/x`. */
function isHealthzUrl(url: string | undefined): boolean {
  return url === "/healthz" || url?.startsWith("/healthz?") === true;
}
