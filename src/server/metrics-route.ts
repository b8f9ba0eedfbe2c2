import type { Metrics } from "../telemetry/metrics.js";
import type { Logger } from "../telemetry/logger.js";
import type { NodeRequest, NodeResponse } from "./fast-call.js";

/** What a metrics route serves: the text exposition and its content type. */
export type MetricsExposition = Pick<Metrics, "exposition" | "contentType">;

/**
 * `GET <path>` (default `/metrics`; HEAD too; a query string is ignored): the Prometheus
 * text exposition. On the serving port beside `/healthz` (`telemetry.metrics.expose:
 * serving`, the default) and answered while load shedding, like `/healthz`: an overloaded
 * gateway is exactly when its metrics are wanted. On the admin listener with `expose: admin`.
 */
export function createMetricsRoute(
  metrics: MetricsExposition,
  path: string,
  logger: Logger,
): (req: NodeRequest, res: NodeResponse) => boolean {
  const withQuery = `${path}?`;
  return (req, res) => {
    const url = req.url;
    if ((url !== path && url?.startsWith(withQuery) !== true) || (req.method !== "GET" && req.method !== "HEAD")) return false;
    metrics.exposition().then(
      (body) => {
        if (res.destroyed) return;
        res.writeHead(200, {
          "content-type": metrics.contentType,
          "cache-control": "no-store",
          "content-length": String(Buffer.byteLength(body)),
        });
        if (req.method === "HEAD") res.end();
        else res.end(body);
      },
      (err: unknown) => {
        // A collect hook that throws is a bug; the scrape fails visibly (Prometheus marks the target down).
        logger.error({ err }, "metrics exposition failed");
        if (res.destroyed || res.headersSent) return;
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
        res.end("metrics exposition failed\n");
      },
    );
    return true;
  };
}
