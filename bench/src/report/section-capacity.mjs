// Report section for scenario 4 (concurrent streams, RSS per stream, RSS after load).
import { linearFit } from "../lib/stats.mjs";
import { check, makeCheck, num, table } from "./format.mjs";
import { lineChart } from "./svg.mjs";

const LIMITS = { streams: 10_000, kbPerStream: 30, recoveredShare: 0.25 };

/** Slope, peak and what was left after load, for one capacity run. */
function summarize(result) {
  const base = result.baselineRssKb;
  const fit = linearFit(result.steps.map((s) => ({ x: s.open, y: s.rssKb })));
  const peak = Math.max(...result.steps.map((s) => s.rssKb));
  const lastAfter = result.after.at(-1);
  const recovered = lastAfter ? (lastAfter.rssKb - base) / Math.max(1, peak - base) : Number.NaN;
  return { base, fit, peak, lastAfter, recovered };
}

export function capacitySection(result) {
  const head = ["## 4. Capacity: concurrent streams and memory", ""];
  if (result.skipped)
    return {
      markdown: [...head, `Not measured: ${result.skipped}`, ...(result.notes ?? []).map((n) => `- ${n}`)].join("\n"),
      charts: [],
      checks: [],
    };
  const isSluice = result.target.startsWith("sluice");
  const { base, fit, peak, lastAfter, recovered } = summarize(result);
  const maxOpen = Math.max(...result.steps.map((s) => s.open));
  const reference =
    result.reference && !result.reference.skipped ? { ...result.reference, ...summarize(result.reference) } : undefined;
  const floorNote = (text) => (reference ? `${text}; bare pass-through: ${num(reference.fit.slope)} KB/stream` : text);
  const floorAfter = (text) => (reference ? `${text}; bare pass-through: ${num(reference.recovered * 100)}% left` : text);
  const failed = result.steps.at(-1)?.failed ?? 0;
  const rampedTo = result.steps.at(-1)?.target ?? 0;
  // A quick run ramps to 1k only: it cannot show 10k, so it neither passes nor fails that check.
  const reachOk = rampedTo < LIMITS.streams ? undefined : maxOpen >= LIMITS.streams && failed === 0;
  const leftUpstream = lastAfter?.fake?.activeStreams ?? -1;
  const checks = isSluice
    ? [
        makeCheck(
          `≥ ${LIMITS.streams.toLocaleString("en-US")} concurrent streams`,
          result.target,
          `${maxOpen.toLocaleString("en-US")} open, ${failed} failed${rampedTo < LIMITS.streams ? ` (ramped to ${rampedTo} only)` : ""}`,
          reachOk,
        ),
        makeCheck(
          `RSS growth ≤ ${LIMITS.kbPerStream} KB per open stream`,
          result.target,
          floorNote(`${num(fit.slope)} KB/stream`),
          Number.isFinite(fit.slope) ? fit.slope <= LIMITS.kbPerStream : undefined,
        ),
        makeCheck(
          `RSS back near baseline after load (≤ ${LIMITS.recoveredShare * 100}% of the growth left)`,
          result.target,
          floorAfter(
            `${num((lastAfter?.rssKb ?? Number.NaN) / 1024)} MB vs baseline ${num(base / 1024)} MB (${num(recovered * 100)}% of growth left)`,
          ),
          Number.isFinite(recovered) ? recovered <= LIMITS.recoveredShare : undefined,
        ),
        makeCheck(
          "closed streams end upstream (streams still open at the fake after close)",
          result.target,
          leftUpstream < 0 ? "not sampled" : `${leftUpstream} of ${maxOpen}`,
          leftUpstream < 0 ? undefined : leftUpstream === 0,
        ),
      ]
    : [];
  const fake = (f) => (f && f.activeStreams >= 0 ? `${f.activeStreams} / ${f.openConnections}` : "–");
  const rows = [
    ["baseline", "0", num(base / 1024), "0", result.baselineFds, "–", "–", "–"],
    ...result.steps.map((s) => [
      `step ${s.target.toLocaleString("en-US")}`,
      s.open.toLocaleString("en-US"),
      num(s.rssKb / 1024),
      num((s.rssKb - base) / 1024),
      s.fds,
      fake(s.fake),
      // Early steps may see no chunk at all in their short settle window (one chunk per 10 s).
      s.transitUs.n > 0 ? num(s.transitUs.p50 / 1000, 2) : "–",
      s.transitUs.n > 0 ? num(s.transitUs.p99 / 1000, 2) : "–",
    ]),
    ...result.after.map((a) => [
      `${num(a.afterS, 1)} s after close`,
      "0",
      num(a.rssKb / 1024),
      num((a.rssKb - base) / 1024),
      a.fds,
      fake(a.fake),
      "–",
      "–",
    ]),
  ];
  const markdown = [
    ...head,
    `Target: **${result.label}**, a fresh process. The Go client opens streams at a paced rate and holds them (the fake sends ` +
      `one chunk every ${result.gapMs} ms), steps up, and at each step reads the proxy's VmRSS (\`/proc/PID/status\`, median ` +
      "of 3 samples). Then it closes every stream at once and samples again. **KB per stream** is the least-squares slope " +
      "of RSS over open streams; transit is the chunk delay while that many streams are open.",
    "",
    table(
      ["", "open streams", "RSS MB", "Δ RSS MB", "proxy fds", "fake: streams / conns", "transit p50 ms", "transit p99 ms"],
      rows,
    ),
    "",
    `- RSS growth: **${num(fit.slope)} KB per open stream** (fit over the steps); peak ${num(peak / 1024)} MB.`,
    `- Streams that failed: ${failed}; ended early: ${result.endedEarly}.${result.errorSamples?.length ? ` Errors: ${result.errorSamples.join("; ")}` : ""}`,
    "- **fake: streams / conns** is what the upstream sees: streams it is still sending and connections open to it. After " +
      "close, streams must drop to 0 (else the proxy did not abort cancelled calls upstream). Connections may stay a while: " +
      "undici replaces each aborted connection with a fresh idle one (the bare pass-through does too) until the fake closes it " +
      "(30 s without a request) — those sockets count in the proxy's fds and RSS.",
    ...(result.notes ?? []).map((n) => `- ${n}`),
    ...(reference ? referenceLines(reference) : []),
    ...(checks.length
      ? [
          "",
          table(
            ["check", "value", "result"],
            checks.map((c) => [c.name, c.value, check(c.ok)]),
          ),
        ]
      : []),
    "",
    "![capacity](CHART:capacity)",
  ].join("\n");
  const svg = lineChart({
    title: `RSS vs open streams — ${result.label}`,
    xLabel: "open streams",
    yLabel: "RSS MB",
    series: [
      { name: result.label, points: [{ x: 0, y: base / 1024 }, ...result.steps.map((s) => ({ x: s.open, y: s.rssKb / 1024 }))] },
      ...(reference
        ? [
            {
              name: reference.label,
              points: [{ x: 0, y: reference.base / 1024 }, ...reference.steps.map((s) => ({ x: s.open, y: s.rssKb / 1024 }))],
            },
          ]
        : []),
    ],
  });
  return { markdown, charts: [{ name: "capacity", svg }], checks };
}

/** The Node floor: the bare pass-through under the same streams, for reading Sluice's figures against. */
function referenceLines(reference) {
  const rows = [
    ["baseline", "0", num(reference.base / 1024), "0"],
    ...reference.steps.map((s) => [
      `step ${s.target.toLocaleString("en-US")}`,
      s.open.toLocaleString("en-US"),
      num(s.rssKb / 1024),
      num((s.rssKb - reference.base) / 1024),
    ]),
    ...reference.after.map((a) => [
      `${num(a.afterS, 1)} s after close`,
      "0",
      num(a.rssKb / 1024),
      num((a.rssKb - reference.base) / 1024),
    ]),
  ];
  return [
    "",
    `**Node floor**: ${reference.label}, a fresh process, the same streams over HTTP/1.1 in and out (two sockets per ` +
      `stream, so the open-files limit may cap its steps). RSS growth **${num(reference.fit.slope)} KB per open stream**; ` +
      `${num(reference.recovered * 100)}% of its growth still held after close.`,
    ...(reference.notes ?? []).map((n) => `- ${n}`),
    "",
    table(["", "open streams", "RSS MB", "Δ RSS MB"], rows),
  ];
}
