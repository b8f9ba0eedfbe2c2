// Scenario 4 — capacity: a fresh proxy (clean baseline RSS) holds a growing number of open,
// slowly paced streams (one chunk per 10 s: memory, not chunk throughput), stepping 1k → 10k; at each step the proxy's VmRSS is read
// from /proc/PID/status. Reported: RSS per step, the fitted slope (KB per open stream) and RSS
// after every stream is closed at once.
//
// Sluice is driven over gRPC (h2c): one client connection carries many streams, so the proxy
// spends one file descriptor per stream (its upstream socket). Over HTTP/1.1 a stream costs the
// proxy two (client + upstream), and 10k of them would hit the 20k open-files limit here.
import { openFilesLimit } from "../lib/machine.mjs";
import { streamClientCapacity } from "../load/stream-client.mjs";
import { activeTargets, bodyFile, waitForQuiet } from "./common.mjs";

const PREFERRED = ["sluice-grpc", "sluice-connect", "pass-through"];

export async function runCapacity(ctx) {
  const active = activeTargets(ctx, { streaming: true });
  const chosen = PREFERRED.map((id) => active.find((t) => t.id === id)).find(Boolean);
  if (!chosen) return { skipped: "no stream-capable proxy target is available" };
  const notes = [];
  if (!chosen.id.startsWith("sluice-grpc")) notes.push(`Sluice gRPC unavailable; measured ${chosen.label} instead.`);
  const result = await measure(ctx, chosen, notes);
  if (result.skipped) return result;
  // The Node floor for the same load: the bare pass-through holding the same streams (over
  // HTTP/1.1, the only way it streams), so a KB-per-stream figure can be read against what
  // Node and undici alone cost.
  const floor = chosen.id === "pass-through" ? undefined : active.find((t) => t.id === "pass-through");
  if (floor) result.reference = await measure(ctx, floor, []);
  return result;
}

async function measure(ctx, chosen, notes) {
  const { settings, log } = ctx;
  const fdsPerStream = chosen.proto === "h2" ? 1 : 2;
  const limit = openFilesLimit();
  const maxStreams = Math.floor((limit - 500) / fdsPerStream);
  const steps = settings.capacitySteps.filter((n) => n <= maxStreams);
  if (steps.length < settings.capacitySteps.length) {
    notes.push(`open-files limit ${limit} caps ${chosen.label} at ${maxStreams} streams; steps above were dropped.`);
  }
  if (steps.length === 0) return { skipped: `open-files limit ${limit} too low`, notes };

  log(`capacity: fresh ${chosen.id}, steps ${steps.join(",")}`);
  const fresh = await ctx.startFresh(chosen.id);
  try {
    const spec = fresh.request("capacity");
    const quiet = await waitForQuiet(ctx);
    const report = await streamClientCapacity({
      mode: spec.streamMode,
      url: spec.url,
      bodyFile: bodyFile(ctx, `${chosen.id}:capacity`, spec.body),
      headers: spec.headers,
      cpu: settings.cpus.load,
      steps,
      rampRate: settings.capacityRampRate,
      settleS: settings.capacitySettleS,
      rssPid: fresh.server.pid,
      conns: 16,
      after: settings.capacityAfterS,
      fakeStatsUrl: `${ctx.fake.url}/stats`,
    });
    return { target: chosen.id, label: chosen.label, gapMs: settings.capacityGapMs, quiet, notes, ...report };
  } finally {
    await fresh.server.stop();
  }
}
