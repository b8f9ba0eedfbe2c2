// Scenario 5 — where Sluice spends its CPU: a fresh Sluice under `node --cpu-prof`, driven with
// Connect JSON unary at c=32 (the throughput scenario's zero-delay load), stopped with SIGTERM
// so V8 writes the profile; self time per function (top 15) and per package, over the load
// window only. Profiling slows the process: these are shares, not speeds.
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { summarizeProfile } from "../lib/cpuprofile.mjs";
import { activeTargets, unaryLoad, waitForQuiet } from "./common.mjs";

const PREFERRED = ["sluice-connect", "sluice-grpc", "pass-through"];

export async function runProfile(ctx) {
  const { settings, log } = ctx;
  const active = activeTargets(ctx);
  const chosen = PREFERRED.map((id) => active.find((t) => t.id === id)).find(Boolean);
  if (!chosen) return { skipped: "no proxy target is available" };
  const notes = chosen.role === "sluice" ? [] : [`Sluice unavailable; profiled ${chosen.label} instead.`];
  const dir = join(ctx.dir, `cpuprof-${chosen.id}`);
  mkdirSync(dir, { recursive: true });

  log(`profile: fresh ${chosen.id} under --cpu-prof, c=32 for ${settings.profileS}s`);
  const fresh = await ctx.startFresh(chosen.id, ["--cpu-prof", `--cpu-prof-dir=${dir}`]);
  let load;
  let fromUs;
  let toUs;
  try {
    await unaryLoad(ctx, fresh, "unary", 32, settings.warmupS);
    await waitForQuiet(ctx);
    fromUs = Number(process.hrtime.bigint() / 1000n);
    load = await unaryLoad(ctx, fresh, "unary", 32, settings.profileS);
    toUs = Number(process.hrtime.bigint() / 1000n);
  } finally {
    const status = await fresh.server.stop(15_000);
    if (status.signal === "SIGKILL") notes.push("the process did not exit on SIGTERM within 15 s; no profile written.");
  }
  const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
  if (!file) return { skipped: `no .cpuprofile written (does the process exit on SIGTERM?)`, notes };
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8"));
  const summary = summarizeProfile(profile, { fromUs, toUs, limit: 15 });
  if (summary.busyMs < 100) {
    notes.push("the load window matched almost no samples (clock mismatch?); the whole profile is shown.");
    Object.assign(summary, summarizeProfile(profile, { limit: 15 }));
  }
  return { target: chosen.id, label: chosen.label, durationS: settings.profileS, rps: load.rps, notes, ...summary };
}
