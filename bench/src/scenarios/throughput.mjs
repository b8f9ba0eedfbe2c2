// Scenario 2 — throughput: closed-loop load at c=32 and c=256, against a zero-delay fake
// (CPU-bound: how many requests one proxy core can carry) and a 20 ms fake (latency-bound at
// c=32, CPU-bound again at c=256 for slow proxies). Besides req/s, the proxy's CPU time per
// request is recorded: it is steadier than req/s on a shared machine.
import { activeTargets, measured, unaryLoad } from "./common.mjs";

export async function runThroughput(ctx) {
  const { settings, log } = ctx;
  const targets = activeTargets(ctx);
  const configs = [];
  const warmed = new Set();
  for (const config of settings.throughputConfigs) {
    const key = `c${config.connections}-${config.workload}`;
    if (!warmed.has(config.workload)) {
      warmed.add(config.workload);
      for (const target of targets) {
        log(`throughput: warm-up ${target.id} ${config.workload}`);
        await unaryLoad(ctx, target, config.workload, 32, settings.warmupS);
      }
    }
    const runs = Object.fromEntries(targets.map((t) => [t.id, []]));
    for (let rep = 1; rep <= settings.repeats; rep++) {
      for (const target of targets) {
        log(`throughput: ${target.id} ${key} ${settings.throughputS}s (repeat ${rep}/${settings.repeats})`);
        runs[target.id].push(
          await measured(ctx, target, () => unaryLoad(ctx, target, config.workload, config.connections, settings.throughputS)),
        );
      }
    }
    configs.push({ key, ...config, runs });
  }
  return { durationS: settings.throughputS, repeats: settings.repeats, configs };
}
