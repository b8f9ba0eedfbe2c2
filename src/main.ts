/**
 * Sluice's entry point: the command line. `--help`, `--version` and `--mint-key` answer at
 * once; serving (and `--check`) loads the gateway (app/gateway-process.ts), whose parts are
 * built by factories that tests build the same way.
 */
import { parseCliArgs, usage, UsageError, type CliArgs } from "./app/cli-args.js";
import { sluiceVersion } from "./app/version.js";
import { mintApiKey } from "./identity/mint-api-key.js";

async function main(): Promise<void> {
  let args: CliArgs;
  try {
    args = parseCliArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n\n${usage}`);
    process.exitCode = 2;
    return;
  }
  if (args.help) {
    process.stdout.write(usage);
    return;
  }
  if (args.version) {
    process.stdout.write(`sluice ${sluiceVersion()} (node ${process.version})\n`);
    return;
  }
  if (args.mintKey !== undefined) {
    const minted = mintApiKey(args.keyId);
    process.stdout.write(
      `API key for tenant ${args.mintKey} (shown once: store it now; Sluice keeps only its hash):\n\n  ${minted.key}\n\n` +
        `Add under tenants.${args.mintKey}.apiKeys in the configuration:\n\n  ${minted.configLine}\n`,
    );
    return;
  }
  const { runGateway } = await import("./app/gateway-process.js");
  await runGateway(args);
}

main().catch((err: unknown) => {
  process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
