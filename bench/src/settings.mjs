// Run settings: full mode (the real measurement, ~15 min) and --quick (a smoke run that proves
// the harness works: short, one repeat, small capacity steps). Every duration is bounded.
import os from "node:os";
import { parseArgs } from "node:util";

export const SCENARIOS = ["latency", "throughput", "streaming", "capacity", "profile"];

const FULL = {
  repeats: 3,
  warmupS: 2,
  latencyS: 5,
  throughputS: 4,
  throughputConfigs: [
    { connections: 32, workload: "unary" },
    { connections: 256, workload: "unary" },
    { connections: 32, workload: "unary-d20" },
    { connections: 256, workload: "unary-d20" },
  ],
  streamS: 5,
  streamConcurrency: 16,
  streamChunks: 64,
  streamFirstMs: 20,
  streamGapMs: 20,
  capacitySteps: [1000, 2000, 4000, 6000, 8000, 10000],
  capacityRampRate: 500,
  capacitySettleS: 2,
  capacityGapMs: 10_000,
  capacityAfterS: [2, 10, 35],
  profileS: 5,
  quietMaxWaitMs: 10_000,
  quietMaxBusyPct: 15,
};

const QUICK = {
  ...FULL,
  repeats: 1,
  warmupS: 1,
  latencyS: 2,
  throughputS: 2,
  streamS: 2,
  streamConcurrency: 8,
  capacitySteps: [250, 500, 1000],
  capacitySettleS: 1,
  capacityAfterS: [2, 8],
  profileS: 2,
  quietMaxWaitMs: 3_000,
};

const USAGE = `usage: node src/run.mjs [--quick] [--only ${SCENARIOS.join(",")}] [--targets id,id] [--repeats N] [--no-build]\n       [--body realistic|hello] [--sluice-log info|warn] [--sluice-auth key|off]`;

export function parseSettings(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      targets: { type: "string" },
      repeats: { type: "string" },
      "no-build": { type: "boolean", default: false },
      // Production defaults: a realistic conversation, Sluice's access log at info (what `npm start` ships).
      body: { type: "string", default: "realistic" },
      "sluice-log": { type: "string", default: "info" },
      // Production defaults: a tenant with an API key, presented by every call (off: anonymous).
      "sluice-auth": { type: "string", default: "key" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const settings = { ...(values.quick ? QUICK : FULL), mode: values.quick ? "quick" : "full" };
  if (values.repeats) settings.repeats = Math.max(1, Number(values.repeats));
  settings.scenarios = values.only ? values.only.split(",").map((s) => s.trim()) : SCENARIOS;
  for (const name of settings.scenarios) if (!SCENARIOS.includes(name)) throw new Error(`unknown scenario ${name}\n${USAGE}`);
  settings.targetFilter = values.targets ? new Set(values.targets.split(",").map((s) => s.trim())) : null;
  settings.build = !values["no-build"];
  settings.body = values.body;
  settings.sluiceLog = values["sluice-log"];
  if (!["key", "off"].includes(values["sluice-auth"])) throw new Error(`--sluice-auth must be key or off\n${USAGE}`);
  settings.sluiceAuth = values["sluice-auth"];
  // Proxy under test on one core, load generator + fake on the other. Without two cores, no pinning.
  const cores = os.availableParallelism();
  settings.cpus = cores >= 2 ? { proxy: 0, load: 1 } : { proxy: undefined, load: undefined };
  return settings;
}

/** Rough duration of a run on a quiet machine (≈1 s per run for the quiet check and tool start-up). */
export function estimateMinutes(s, unaryTargets, streamTargets) {
  const streamLenS = (s.streamFirstMs + s.streamChunks * s.streamGapMs) / 1000;
  const parts = {
    latency: unaryTargets * s.warmupS + s.repeats * unaryTargets * (s.latencyS + 1),
    throughput: 2 * unaryTargets * s.warmupS + s.throughputConfigs.length * s.repeats * unaryTargets * (s.throughputS + 1),
    streaming: streamTargets * (s.warmupS + streamLenS) + s.repeats * streamTargets * (s.streamS + streamLenS + 1),
    // Sluice, then the bare pass-through as the Node floor.
    capacity:
      2 *
      (s.capacitySteps.at(-1) / s.capacityRampRate +
        s.capacitySteps.length * (s.capacitySettleS + 1.5) +
        Math.max(...s.capacityAfterS) +
        10),
    profile: s.warmupS + s.profileS + 10,
  };
  return s.scenarios.reduce((sum, name) => sum + parts[name], 0) / 60;
}
