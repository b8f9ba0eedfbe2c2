import { createSluice, type Sluice } from "../../src/app/create-sluice.js";
import { parseConfig } from "../../src/config/load-config.js";
import type { SluiceConfig } from "../../src/config/schema.js";
import { createAdminServer, type AdminServer } from "../../src/server/admin-server.js";
import { createSluiceServer, type ListeningAddress, type SluiceServer } from "../../src/server/create-server.js";
import { createLogger, type Logger } from "../../src/telemetry/logger.js";

export interface MetricsGateway extends ListeningAddress {
  readonly config: SluiceConfig;
  readonly sluice: Sluice;
  readonly server: SluiceServer;
  /** Started when the document sets `admin.listen`, wired as src/main.ts wires it. */
  readonly admin: (ListeningAddress & { readonly server: AdminServer }) | undefined;
  close(): Promise<void>;
}

/**
 * A real Sluice on 127.0.0.1 and a free port with its metrics served as `npm start` serves
 * them: on the serving port (`telemetry.metrics.expose: serving`), or on the admin listener
 * (`admin.listen`, `expose: admin`) started after it.
 */
export async function startMetricsGateway(
  document: Record<string, unknown>,
  options: { readonly logger?: Logger } = {},
): Promise<MetricsGateway> {
  // A 2 s drain unless the document says otherwise (as startSluice): a call left open costs little at close.
  const server0 = { drainTimeoutMs: 2_000, ...(document["server"] as object | undefined) };
  const config = parseConfig({ ...document, listen: "127.0.0.1:0", server: server0 }, {});
  const logger = options.logger ?? createLogger({ level: "silent" });
  const sluice = createSluice(config, { logger });
  const server = createSluiceServer({
    config,
    routes: sluice.routes,
    healthDetails: sluice.healthDetails,
    metrics: sluice.metrics,
    logger,
  });
  const address = await server.listen();
  let admin: MetricsGateway["admin"];
  if (config.admin.listen !== undefined) {
    const adminServer = createAdminServer({
      listen: config.admin.listen,
      health: server.health,
      healthDetails: sluice.healthDetails,
      metrics: config.telemetry.metrics.expose === "admin" ? sluice.metrics : undefined,
      metricsPath: config.telemetry.metrics.path,
      logger,
    });
    admin = { ...(await adminServer.listen()), server: adminServer };
  }
  let closing: Promise<void> | undefined;
  return {
    ...address,
    config,
    sluice,
    server,
    admin,
    close() {
      closing ??= server
        .shutdown("test done")
        .then(() => admin?.server.close())
        .then(() => sluice.close());
      return closing;
    },
  };
}
