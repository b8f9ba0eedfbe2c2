// What every measured run shares: wait for a quiet machine, account CPU while it runs, and
// drive unary load with the right native tool for the target's protocol.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitQuiet, withCpuAccounting } from "../lib/machine.mjs";
import { runH2load } from "../load/h2load.mjs";
import { runWrk, wrkScript } from "../load/wrk.mjs";

/** Writes `content` to a file in the run's temp dir once per key; returns the path. */
export function cachedFile(ctx, key, make) {
  ctx.files ??= new Map();
  let path = ctx.files.get(key);
  if (!path) {
    path = make();
    ctx.files.set(key, path);
  }
  return path;
}

export function bodyFile(ctx, key, body) {
  return cachedFile(ctx, `body:${key}`, () => {
    const path = join(ctx.dir, `body-${ctx.files.size + 1}.bin`);
    writeFileSync(path, body);
    return path;
  });
}

/**
 * Bounded wait for a quiet machine. When three waits in a row ran out, the machine is busy for
 * the long haul (another job) and waiting longer only stretches the run: later waits are cut
 * to 2 s until a quiet moment is seen again. Every run records what it got.
 */
export async function waitForQuiet(ctx) {
  const { quietMaxWaitMs, quietMaxBusyPct } = ctx.settings;
  const maxWaitMs = (ctx.noisyStreak ?? 0) >= 3 ? Math.min(2_000, quietMaxWaitMs) : quietMaxWaitMs;
  const quiet = await waitQuiet({ maxWaitMs, maxBusyPct: quietMaxBusyPct });
  ctx.noisyStreak = quiet.quiet ? 0 : (ctx.noisyStreak ?? 0) + 1;
  if (!quiet.quiet) ctx.log(`  machine busy (cores ${quiet.busyPct.join("% / ")}%), running anyway`);
  return quiet;
}

/**
 * Runs `fn` as one measured run: bounded wait for quiet, then CPU accounting of the fake and
 * (for proxies) the proxy process. The result carries `quiet` and `cpu` beside fn's value.
 */
export async function measured(ctx, target, fn) {
  const quiet = await waitForQuiet(ctx);
  const pids = { fake: ctx.fake.pid };
  if (target.role !== "floor") pids.proxy = target.server.pid;
  const { value, cpu } = await withCpuAccounting(pids, fn);
  // CPU someone else took from the (pinned) proxy's core while it ran: its core's busy share
  // minus its own. Loopback softirq work lands here too, so a few percent is normal.
  const proxyCore = ctx.settings.cpus.proxy;
  const foreignPct =
    pids.proxy !== undefined && proxyCore !== undefined
      ? Math.round(cpu.coreBusyPct[proxyCore] - (100 * cpu.processCpuS.proxy) / cpu.wallS)
      : undefined;
  return { ...value, quiet, cpu, foreignPct };
}

/** One unary load run: wrk for HTTP/1.1 targets, h2load for h2c ones. */
export async function unaryLoad(ctx, target, workload, connections, durationS) {
  const spec = target.request(workload);
  const cpu = ctx.settings.cpus.load;
  if (target.proto === "h1") {
    const script = cachedFile(ctx, `wrk:${target.id}:${workload}`, () => wrkScript(ctx.dir, spec));
    return runWrk({ url: spec.url, script, connections, durationS, cpu });
  }
  const result = await runH2load({
    url: spec.url,
    bodyFile: bodyFile(ctx, `${target.id}:${workload}`, spec.body),
    headers: spec.headers,
    connections,
    durationS,
    cpu,
    dir: ctx.dir,
  });
  // A gRPC error is an HTTP 200 with no message: fewer DATA bytes than the verified answer.
  const expected = target.verified?.dataBytes;
  if (expected && result.dataBytesPerResponse < 0.9 * expected) {
    result.suspectErrors = `responses average ${result.dataBytesPerResponse.toFixed(0)} B, verified answer ${expected} B`;
  }
  return result;
}

/** Proxy CPU per completed request in µs (NaN for floors, which have no proxy). */
export function cpuUsPer(run, count) {
  const proxyS = run.cpu.processCpuS.proxy;
  return proxyS === undefined || !count ? Number.NaN : (proxyS * 1e6) / count;
}

/** The unary-capable and (for streaming) stream-capable targets, in report order. */
export function activeTargets(ctx, { streaming = false } = {}) {
  return ctx.targets.filter((t) => !t.skip && (!streaming || !t.unaryOnly));
}
