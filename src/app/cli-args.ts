import { parseArgs } from "node:util";
import { parseListenAddress } from "../server/listen-address.js";

/** What the command line (and its environment fallbacks) asks for. */
export interface CliArgs {
  /** Configuration file; undefined: the embedded default. */
  readonly configFile: string | undefined;
  /** Overrides the configuration's `listen`. */
  readonly listen: string | undefined;
  readonly help: boolean;
  /** `--version`: print the version and exit. */
  readonly version: boolean;
  /** `--check`: load and validate the configuration (and the files it names), report, exit. */
  readonly check: boolean;
  /** `--mint-key TENANT`: print a new API key for the tenant and its config line, then exit. */
  readonly mintKey: string | undefined;
  /** `--key-id ID` with `--mint-key`: the key's id in logs and metrics. */
  readonly keyId: string | undefined;
}

/** A bad command line; main prints the message and the usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const usage = `Usage: sluice [--config FILE] [--listen HOST:PORT] [--check]
       npm start -- [options]    (npm needs the -- before options meant for Sluice)

Sluice: an LLM API gateway — gRPC, gRPC-Web and Connect on one port.

Options:
  --config FILE        YAML configuration (env: SLUICE_CONFIG). Default: the embedded
                       configuration serving model "demo" (no keys, no network).
  --listen HOST:PORT   Address to listen on, e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:0
                       (env: SLUICE_LISTEN). Overrides the configuration's "listen".
  --mint-key TENANT    Print a new API key for TENANT (once: store it now) and the line
                       to add under tenants.TENANT.apiKeys in the configuration; exit.
  --key-id ID          With --mint-key: the key's id, named in logs and metrics.
  --check              Validate the configuration and every file it names (provider key
                       files, TLS files), print a summary and exit: 0 valid, 2 not.
  -v, --version        Print the version and exit.
  -h, --help           Show this help.

On start one JSON log line with "msg":"sluice listening" carries the "url" served.
SIGTERM / SIGINT drain in-flight calls (server.drainTimeoutMs) and exit 0; a second
signal exits at once. SIGHUP (or saving the --config file) reloads the configuration.
`;

/**
 * Parses argv (without node and the script). Flags win over SLUICE_CONFIG /
 * SLUICE_LISTEN; `--listen` is checked here so a typo fails before anything starts.
 */
export function parseCliArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): CliArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: "string" },
        listen: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
        check: { type: "boolean" },
        "mint-key": { type: "string" },
        "key-id": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const listen = values.listen ?? (env["SLUICE_LISTEN"] || undefined);
  if (listen !== undefined) {
    try {
      parseListenAddress(listen);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const mintKey = values["mint-key"];
  const keyId = values["key-id"];
  if (mintKey !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(mintKey)) {
    throw new UsageError(`--mint-key: "${mintKey.slice(0, 64)}" is not a tenant name (1–64 letters, digits, _ . -)`);
  }
  if (keyId !== undefined && (mintKey === undefined || !/^[A-Za-z0-9_.:-]{1,64}$/.test(keyId))) {
    throw new UsageError(mintKey === undefined ? "--key-id goes with --mint-key" : "--key-id: 1–64 letters, digits, _ . : -");
  }
  return {
    configFile: values.config ?? (env["SLUICE_CONFIG"] || undefined),
    listen,
    help: values.help === true,
    version: values.version === true,
    check: values.check === true,
    mintKey,
    keyId,
  };
}
