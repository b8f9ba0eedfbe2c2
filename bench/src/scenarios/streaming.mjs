// Scenario 3 — streaming. The fake sends N content chunks (default 64), 20 ms before the first
// and 20 ms apart; the Go client keeps `streamConcurrency` streams going and timestamps every
// content delta:
//   TTFT     request sent → first content delta       (added = target p99 − direct p99)
//   gap      between two deltas of one stream          (added = target p99 − direct p99)
//   transit  fake wrote the chunk → client read it      (same CLOCK_MONOTONIC on both sides)
// Transit isolates what the proxy adds to each chunk; gap also carries the fake's timer jitter.
import { streamClientLoad } from "../load/stream-client.mjs";
import { activeTargets, bodyFile, measured } from "./common.mjs";

function clientArgs(ctx, target, concurrency, durationS) {
  const spec = target.request("stream");
  const s = ctx.settings;
  return {
    mode: spec.streamMode,
    url: spec.url,
    bodyFile: bodyFile(ctx, `${target.id}:stream`, spec.body),
    headers: spec.headers,
    cpu: s.cpus.load,
    concurrency,
    durationS,
    expectChunks: s.streamChunks,
    streamS: (s.streamFirstMs + s.streamChunks * s.streamGapMs) / 1000,
  };
}

export async function runStreaming(ctx) {
  const { settings, log } = ctx;
  const skipped = {};
  const targets = [];
  // The warm-up doubles as the streaming check: a target whose streams fail is reported, not timed.
  for (const target of activeTargets(ctx, { streaming: true })) {
    log(`streaming: warm-up ${target.id}`);
    try {
      const warm = await streamClientLoad(clientArgs(ctx, target, 4, settings.warmupS));
      if (warm.streams === 0 || warm.errors > 0)
        skipped[target.id] = `stream check failed: ${warm.errorSamples.join("; ") || "no stream completed"}`;
      else targets.push(target);
    } catch (error) {
      skipped[target.id] = error.message.slice(0, 300);
    }
  }
  const runs = Object.fromEntries(targets.map((t) => [t.id, []]));
  for (let rep = 1; rep <= settings.repeats; rep++) {
    for (const target of targets) {
      log(`streaming: ${target.id} c=${settings.streamConcurrency} ${settings.streamS}s (repeat ${rep}/${settings.repeats})`);
      runs[target.id].push(
        await measured(ctx, target, () =>
          streamClientLoad(clientArgs(ctx, target, settings.streamConcurrency, settings.streamS)),
        ),
      );
    }
  }
  return {
    concurrency: settings.streamConcurrency,
    durationS: settings.streamS,
    chunks: settings.streamChunks,
    firstMs: settings.streamFirstMs,
    gapMs: settings.streamGapMs,
    repeats: settings.repeats,
    runs,
    skipped,
  };
}
