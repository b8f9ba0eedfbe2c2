import type { Socket } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { createSluice, type Sluice } from "../../src/app/create-sluice.js";
import { defaultConfigDocument } from "../../src/config/default-config.js";
import { parseConfig } from "../../src/config/load-config.js";
import type { SluiceConfig } from "../../src/config/schema.js";
import { createAdminServer, type AdminServer } from "../../src/server/admin-server.js";
import { createSluiceServer, type ListeningAddress, type SluiceServer } from "../../src/server/create-server.js";
import { createLogger, type Logger } from "../../src/telemetry/logger.js";

export interface StartSluiceOptions {
  /**
   * Merged over the document's `server` section (e.g. a short `drainTimeoutMs`). Unless
   * the document or this sets it, `drainTimeoutMs` is 2 s here (10 s in production), so a
   * test that leaves a call open costs little at close.
   */
  readonly server?: Partial<SluiceConfig["server"]>;
  /** Environment for `${VAR}` placeholders and OTEL_* variables; default empty (no real provider keys leak in). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default: silent. */
  readonly logger?: Logger;
  /** See OnePortListenerOptions.onConnection (e.g. a ReadSpy). */
  readonly onConnection?: (socket: Socket) => void;
  /** Rewrites the route table's interceptor chain (outermost first), e.g. to put a test interceptor in front. */
  readonly interceptors?: (chain: readonly Interceptor[]) => readonly Interceptor[];
  /** See SluiceServerOptions.fastLanes; false serves every call through connect-node. */
  readonly fastLanes?: boolean;
}

export interface StartedSluice {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly config: SluiceConfig;
  readonly server: SluiceServer;
  readonly sluice: Sluice;
  /** The admin listener, started (after the serving one, as src/main.ts does) when the document sets `admin.listen`. */
  readonly admin: (ListeningAddress & { readonly server: AdminServer }) | undefined;
  /** Graceful shutdown of the server (and the admin listener), then the providers. Idempotent. */
  close(): Promise<void>;
}

/**
 * A real Sluice server in this process on 127.0.0.1 and a free port: the same listener,
 * router, services and providers `npm start` runs, for integration tests over real sockets.
 * `configDocument` is YAML-shaped (what a config file parses to); default: the embedded
 * default (model `demo`).
 */
export async function startSluice(
  configDocument?: Record<string, unknown>,
  options: StartSluiceOptions = {},
): Promise<StartedSluice> {
  const env = options.env ?? {};
  const document = configDocument ?? defaultConfigDocument(env);
  const config = parseConfig(
    {
      ...document,
      listen: "127.0.0.1:0",
      server: { drainTimeoutMs: 2_000, ...(document["server"] as object | undefined), ...options.server },
    },
    env,
  );
  const logger = options.logger ?? createLogger({ level: "silent" });
  // The same environment as the config's placeholders: OTEL_* variables apply as in production.
  const sluice = createSluice(config, { logger, env });
  const routes = options.interceptors
    ? { ...sluice.routes, interceptors: options.interceptors(sluice.routes.interceptors) }
    : sluice.routes;
  const server = createSluiceServer({
    config,
    routes,
    healthDetails: sluice.healthDetails,
    metrics: sluice.metrics,
    logger,
    onConnection: options.onConnection,
    fastLanes: options.fastLanes,
  });
  let address;
  let admin: StartedSluice["admin"];
  try {
    address = await server.listen();
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
  } catch (err) {
    await server.shutdown("start failed");
    await sluice.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    ...address,
    config,
    server,
    sluice,
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
