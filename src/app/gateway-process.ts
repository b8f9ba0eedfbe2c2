import type { CliArgs } from "./cli-args.js";
import { createSluice, type Sluice } from "./create-sluice.js";
import { configChanges, type ConfigChanges } from "./reload-plan.js";
import { createConfigReloader, type ConfigReloader } from "../config/config-reloader.js";
import { ConfigError, loadConfig } from "../config/load-config.js";
import { configWarnings } from "../config/config-warnings.js";
import { anonymousListenProblem } from "../identity/authenticator.js";
import { parseListenAddress } from "../server/listen-address.js";
import type { SluiceConfig } from "../config/schema.js";
import { createSluiceServer, type SluiceServer } from "../server/create-server.js";
import { createAdminServer, parseAdminListen, type AdminServer } from "../server/admin-server.js";
import { createLogger, type Logger } from "../telemetry/logger.js";

/** Exit codes: 2 for a bad command line or configuration, 1 for a failure at runtime. */
export const exitUsage = 2;
export const exitFailure = 1;

/**
 * The gateway process once the command line is read: configuration → logger → services →
 * server → signals and hot reload. Imported by main.ts only when it serves (or checks a
 * configuration), so `--help`, `--version` and `--mint-key` answer without loading it.
 */
export async function runGateway(args: CliArgs): Promise<void> {
  let config: SluiceConfig;
  try {
    config = await loadConfig(args.configFile, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n`);
    process.exitCode = exitUsage;
    return;
  }
  if (args.listen !== undefined) config = { ...config, listen: args.listen };
  const anonymousProblem = anonymousListenProblem(config, parseListenAddress(config.listen).host);
  if (anonymousProblem !== undefined) {
    process.stderr.write(`sluice: ${anonymousProblem}\n`);
    process.exitCode = exitUsage;
    return;
  }
  if (config.admin.listen !== undefined) {
    try {
      parseAdminListen(config.admin.listen);
    } catch (err) {
      process.stderr.write(`sluice: admin.listen: ${(err as Error).message}\n`);
      process.exitCode = exitUsage;
      return;
    }
  }

  const logger = createLogger({ level: config.log.level });
  // Said once, at startup: each would otherwise surface as failing calls.
  for (const warning of configWarnings(config)) logger.warn(warning);
  if (Object.keys(config.tenants).length === 0) {
    logger.warn(
      { listen: config.listen },
      config.auth.allowAnonymous
        ? "authentication off (auth.allowAnonymous): every caller that reaches the port is served"
        : "authentication off: no tenants configured, serving anonymously on loopback only",
    );
  }
  let sluice: Sluice;
  try {
    sluice = createSluice(config, { logger, env: process.env });
  } catch (err) {
    // What only building the providers finds (an unreadable key file): a configuration error too.
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n`);
    process.exitCode = exitUsage;
    return;
  }
  // The serving generation: a configuration reload replaces it (watchConfig).
  const serving: Serving = { sluice };
  let server: SluiceServer;
  try {
    server = createSluiceServer({
      config,
      routes: sluice.routes,
      healthDetails: () => serving.sluice.healthDetails(),
      metrics: sluice.metrics,
      // A check builds the server only to read its TLS files: its start and stop are not news.
      logger: args.check ? logger.child({}, { level: "warn" }) : logger,
    });
  } catch (err) {
    // TLS files (certificate, key, client CA) are read here: unreadable is a configuration error too.
    await sluice.close();
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n`);
    process.exitCode = exitUsage;
    return;
  }
  if (args.check) {
    // Everything a start reads (the file, provider key files, TLS files) has been read: report and stop.
    await server.shutdown("configuration check");
    await sluice.close();
    process.stdout.write(
      `sluice: configuration OK${args.configFile === undefined ? " (embedded default)" : `: ${args.configFile}`} — ` +
        `${Object.keys(config.models).length} models, ${Object.keys(config.providers).length} providers, ` +
        `${Object.keys(config.tenants).length} tenants; would listen on ${config.listen}\n`,
    );
    return;
  }
  const admin = createAdmin(config, serving, server, logger);
  const reloader = watchConfig(args, serving, server, logger);
  handleSignals(server, serving, logger, admin, reloader);

  let url: string;
  try {
    ({ url } = await server.listen());
  } catch (err) {
    await sluice.close();
    const hint = listenProblem(err, config.listen, "--listen HOST:PORT (or `listen:` in the configuration)");
    if (hint !== undefined) process.stderr.write(`sluice: ${hint}\n`);
    else logger.fatal({ err, listen: config.listen }, "cannot listen");
    process.exitCode = exitFailure;
    // The reload watcher and signal handlers would keep the process alive.
    process.exit(exitFailure);
  }
  // Tooling (scripts, tests, the client examples) parses this line for the URL, so it is
  // written whatever the configured log level (a child logger with its own level).
  logger.child({}, { level: "info" }).info({ url }, "sluice listening");
  if (admin !== undefined) await listenAdmin(admin, config, server, serving.sluice, logger);
}

/** The admin listener (`admin.listen`): metrics with `expose: admin`, health details, profiling. Unset: none. */
function createAdmin(config: SluiceConfig, serving: Serving, server: SluiceServer, logger: Logger): AdminServer | undefined {
  if (config.admin.listen === undefined) return undefined;
  const { expose, path } = config.telemetry.metrics;
  return createAdminServer({
    listen: config.admin.listen,
    health: server.health,
    healthDetails: () => serving.sluice.healthDetails(),
    // One registry for every generation (create-sluice.ts).
    metrics: expose === "admin" ? serving.sluice.metrics : undefined,
    metricsPath: path,
    logger,
  });
}

/** Binds the admin listener after the serving one; failing to is fatal, as for the serving port. */
async function listenAdmin(admin: AdminServer, config: SluiceConfig, server: SluiceServer, sluice: Sluice, logger: Logger) {
  let url: string;
  try {
    ({ url } = await admin.listen());
  } catch (err) {
    const hint = listenProblem(err, config.admin.listen ?? "", "`admin.listen` in the configuration");
    if (hint !== undefined) process.stderr.write(`sluice: ${hint}\n`);
    else logger.fatal({ err, listen: config.admin.listen }, "cannot listen (admin)");
    await server.shutdown("admin listener failed");
    await sluice.close();
    process.exitCode = exitFailure;
    return;
  }
  // Like "sluice listening": written whatever the log level, for the tooling that reads it.
  logger.child({}, { level: "info" }).info({ url }, "sluice admin listening");
}

/** The generation serving now. */
interface Serving {
  sluice: Sluice;
}

/**
 * Hot reload (`--config FILE` only: the embedded default has no file to watch): the file is
 * watched and SIGHUP reloads it. A new configuration is validated completely and built
 * (createSluice reusing what is unchanged) before the server's route table is swapped; the
 * previous generation is retired once the calls it started have ended. An invalid one is
 * rejected (config-reloader.ts) and the running one keeps serving.
 */
function watchConfig(args: CliArgs, serving: Serving, server: SluiceServer, logger: Logger): ConfigReloader | undefined {
  const file = args.configFile;
  if (file === undefined || file === "") {
    process.on("SIGHUP", () => logger.warn({ signal: "SIGHUP" }, "no configuration file (--config): nothing to reload"));
    return undefined;
  }
  // Retirements run one after another: a generation's providers close only after older ones' calls end.
  let retiring = Promise.resolve();
  const reloader = createConfigReloader({
    file,
    env: process.env,
    logger,
    running: () => serving.sluice.config,
    prepare: (config) => (args.listen === undefined ? config : { ...config, listen: args.listen }),
    apply(config) {
      const problem = anonymousListenProblem(config, parseListenAddress(config.listen).host);
      if (problem !== undefined) throw new ConfigError(problem);
      const previous = serving.sluice;
      const next = createSluice(config, { logger, env: process.env }, previous);
      server.setRoutes(next.routes);
      serving.sluice = next;
      for (const warning of configWarnings(config)) logger.warn(warning);
      logger.info({ file, ...changeSummary(configChanges(previous.config, config)) }, "configuration reloaded");
      retiring = retiring
        .then(() => previous.retire(next))
        .catch((err: unknown) => logger.error({ err }, "closing what the previous configuration used failed"));
    },
    onResult: (result) => serving.sluice.metrics.configReloaded(result),
  });
  process.on("SIGHUP", () => {
    logger.info({ signal: "SIGHUP", file }, "reloading configuration");
    void reloader.reload();
  });
  return reloader;
}

/** The reload line's summary: names added, removed and changed, only the non-empty lists. */
function changeSummary(changes: ConfigChanges): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const section of ["models", "providers", "tenants"] as const) {
    for (const [what, names] of Object.entries(changes[section])) {
      if ((names as string[]).length > 0) summary[`${section}${what[0]!.toUpperCase()}${what.slice(1)}`] = names;
    }
  }
  if (changes.sections.length > 0) summary["sectionsChanged"] = changes.sections;
  return summary;
}

/** First SIGTERM / SIGINT: graceful drain, then exit 0. A second one: exit at once. */
function handleSignals(
  server: SluiceServer,
  serving: Serving,
  logger: Logger,
  admin: AdminServer | undefined,
  reloader: ConfigReloader | undefined,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    stopping = true;
    reloader?.close();
    logger.info({ signal }, "shutting down");
    void server
      .shutdown(signal)
      // The admin listener stays up through the drain: its metrics and health show it.
      .then(() => admin?.close())
      .then(() => serving.sluice.close())
      .then(
        () => {
          process.exitCode = 0;
          // Normally the event loop is empty by now; this only catches a stray handle.
          setTimeout(() => process.exit(0), 1_000).unref();
        },
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(exitFailure);
        },
      );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

/** A plain sentence for the listen failures an operator causes (address in use, a privileged port), or undefined. */
function listenProblem(err: unknown, address: string, how: string): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EADDRINUSE") {
    return `cannot listen on ${address}: the address is already in use (another Sluice or another server?). Choose another with ${how}.`;
  }
  if (code === "EACCES")
    return `cannot listen on ${address}: permission denied (ports below 1024 need privileges). Choose another with ${how}.`;
  if (code === "EADDRNOTAVAIL")
    return `cannot listen on ${address}: no such address on this machine. Choose another with ${how}.`;
  return undefined;
}
