// Entry: `node src/run.mjs [--quick] [--only …] [--targets …]` (usually via run.sh / npm run bench).
// Builds Sluice and the Go stream client, starts the fleet (fake + proxies, pinned), runs the
// scenarios, writes the report, and stops every process it started — on success, error or ^C.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { collectEnvironment } from "./lib/environment.mjs";
import { runTool } from "./lib/processes.mjs";
import { buildStreamClient } from "./load/stream-client.mjs";
import { writeReport } from "./report/write-report.mjs";
import { runCapacity } from "./scenarios/capacity.mjs";
import { runLatency } from "./scenarios/latency.mjs";
import { runProfile } from "./scenarios/profile.mjs";
import { runStreaming } from "./scenarios/streaming.mjs";
import { runThroughput } from "./scenarios/throughput.mjs";
import { estimateMinutes, parseSettings } from "./settings.mjs";
import { startFleet } from "./targets/fleet.mjs";
import { BENCH_DIR, MAIN_DIR } from "./targets/servers.mjs";

const RUNNERS = {
  latency: runLatency,
  throughput: runThroughput,
  streaming: runStreaming,
  capacity: runCapacity,
  profile: runProfile,
};

const startedAt = Date.now();
function log(message) {
  process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);
}

async function requireTools() {
  for (const [command, args] of [
    ["wrk", ["-v"]],
    ["h2load", ["--version"]],
    ["taskset", ["-V"]],
    ["go", ["version"]],
  ]) {
    try {
      await runTool({ command, args, timeoutMs: 10_000 });
    } catch {
      throw new Error(`${command} is not installed (apt: wrk, nghttp2-client, util-linux, golang-go)`);
    }
  }
}

async function buildSluice(settings) {
  if (!settings.build) return;
  log("building Sluice (npm run build in the repo root)");
  const result = await runTool({ command: "npm", args: ["run", "build", "--silent"], cwd: MAIN_DIR, timeoutMs: 300_000 });
  if (result.code !== 0) log(`Sluice build failed; using whatever dist/ holds:\n${(result.stdout + result.stderr).slice(-1500)}`);
}

async function main() {
  const settings = parseSettings(process.argv.slice(2));
  await requireTools();
  await buildSluice(settings);
  log("building the Go stream client");
  await buildStreamClient();
  const dir = mkdtempSync(join(os.tmpdir(), "sluice-bench-"));
  // Also on ^C, where processes.mjs exits straight away (after killing the children).
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const env = collectEnvironment({ mainDir: MAIN_DIR, benchDir: BENCH_DIR });
  const ctx = { settings, dir, log };
  let fleet;
  try {
    fleet = await startFleet(ctx);
    Object.assign(ctx, { fake: fleet.fake, targets: fleet.targets, startFresh: fleet.startFresh });
    const live = fleet.targets.filter((t) => !t.skip);
    const minutes = estimateMinutes(settings, live.length, live.filter((t) => !t.unaryOnly).length);
    log(
      `${settings.mode} run, ${settings.repeats} repeat(s): about ${minutes.toFixed(0)} min on a quiet machine (more when busy)`,
    );
    const results = {};
    for (const name of settings.scenarios) {
      log(`scenario ${name}`);
      try {
        results[name] = await RUNNERS[name](ctx);
      } catch (error) {
        log(`scenario ${name} failed: ${error.stack}`);
        results[name] = { error: error.message };
      }
    }
    await fleet.stopAll();
    const stderrTails = fleet.stderrTails();
    fleet = undefined;
    env.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
    const profileDir = readdirSync(dir).find((name) => name.startsWith("cpuprof-"));
    const profileFile = profileDir && readdirSync(join(dir, profileDir)).find((n) => n.endsWith(".cpuprofile"));
    const { mdPath } = writeReport({
      resultsDir: join(BENCH_DIR, "results"),
      env,
      settings,
      targets: fleet?.targets ?? ctx.targets,
      results,
      stderrTails,
      profileFile: profileFile && join(dir, profileDir, profileFile),
    });
    log(`report: ${mdPath} (${((Date.now() - startedAt) / 60000).toFixed(1)} min)`);
  } finally {
    if (fleet) await fleet.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  log(`failed: ${error.stack ?? error}`);
  process.exitCode = 1;
});
