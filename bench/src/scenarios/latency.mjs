// Scenario 1 — added latency at concurrency 1. One connection, one request at a time: the
// latency a single caller sees through each target. Added latency = target − its floor
// (direct for wrk/HTTP/1.1 targets, direct-h2 for h2load/h2c ones), median of the repeats.
// Repeats are interleaved across targets so a slow drift in machine load hits all alike.
import { activeTargets, measured, unaryLoad } from "./common.mjs";

export async function runLatency(ctx) {
  const { settings, log } = ctx;
  const targets = activeTargets(ctx);
  for (const target of targets) {
    log(`latency: warm-up ${target.id}`);
    await unaryLoad(ctx, target, "unary", 8, settings.warmupS);
  }
  const runs = Object.fromEntries(targets.map((t) => [t.id, []]));
  for (let rep = 1; rep <= settings.repeats; rep++) {
    for (const target of targets) {
      log(`latency: ${target.id} c=1 ${settings.latencyS}s (repeat ${rep}/${settings.repeats})`);
      runs[target.id].push(await measured(ctx, target, () => unaryLoad(ctx, target, "unary", 1, settings.latencyS)));
    }
  }
  return { durationS: settings.latencyS, repeats: settings.repeats, runs };
}
