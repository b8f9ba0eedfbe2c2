// Report section for scenario 3 (streaming: TTFT, chunk gap, chunk transit).
import { median, percentileSorted } from "../lib/stats.mjs";
import { check, makeCheck, num, quietCell, signed, spreadCell, table } from "./format.mjs";
import { barChart } from "./svg.mjs";

const LIMITS = { ttftP99Us: 1000, gapP99Us: 50 };

export function streamingSection(result, targets) {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const ids = Object.keys(result.runs);
  const med = (id, metric, key) => median(result.runs[id]?.map((r) => r[metric][key]) ?? []);
  const added = (id, metric, key) => (id === "direct" ? Number.NaN : med(id, metric, key) - med("direct", metric, key));
  // TTFT: one sample per stream, only tens per run — pool the repeats' streams before taking percentiles.
  const pooled = (id, p) =>
    percentileSorted(
      (result.runs[id] ?? []).flatMap((r) => r.ttftRawUs ?? []).sort((a, b) => a - b),
      p,
    );
  const addedTtft = (id) => (id === "direct" ? Number.NaN : pooled(id, 0.99) - pooled("direct", 0.99));
  const rows = [];
  const checks = [];
  const chart = { labels: [], ttft: [], gap: [], transit: [] };
  for (const id of ids) {
    const target = byId.get(id);
    const runs = result.runs[id];
    const addTtft = addedTtft(id);
    const addGap = added(id, "gapUs", "p99");
    const addTransit = added(id, "transitUs", "p99");
    const isSluice = target.role === "sluice";
    const ok = isSluice && Number.isFinite(addTtft) ? addTtft < LIMITS.ttftP99Us && addGap < LIMITS.gapP99Us : undefined;
    if (isSluice) {
      checks.push(
        makeCheck(
          `streaming added TTFT p99 < ${LIMITS.ttftP99Us} µs`,
          id,
          `${signed(addTtft)} µs`,
          Number.isFinite(addTtft) ? addTtft < LIMITS.ttftP99Us : undefined,
        ),
      );
      checks.push(
        makeCheck(
          `streaming added per-chunk gap p99 < ${LIMITS.gapP99Us} µs`,
          id,
          `${signed(addGap)} µs (transit p99 ${signed(addTransit)} µs)`,
          Number.isFinite(addGap) ? addGap < LIMITS.gapP99Us : undefined,
        ),
      );
    }
    rows.push([
      target.label + (id === "portkey" ? " ¹" : ""),
      num(pooled(id, 0.5) / 1000, 2),
      num(pooled(id, 0.99) / 1000, 2),
      num(addTtft),
      spreadCell(
        runs.map((r) => r.gapUs.p99 / 1000),
        2,
      ),
      num(addGap),
      spreadCell(runs.map((r) => r.transitUs.p50)),
      spreadCell(runs.map((r) => r.transitUs.p99)),
      num(addTransit),
      spreadCell(runs.map((r) => (r.cpu.processCpuS.proxy * 1e6) / r.chunks)),
      runs.reduce((s, r) => s + r.streams, 0),
      runs.reduce((s, r) => s + r.errors, 0),
      quietCell(runs),
      check(ok),
    ]);
    chart.labels.push(target.label);
    // Portkey's 25 ms sleep would set the scale and flatten every other bar.
    chart.ttft.push(id === "portkey" ? null : addTtft);
    chart.gap.push(addGap);
    chart.transit.push(addTransit);
  }
  const skipped = Object.entries(result.skipped ?? {}).map(([id, why]) => `- \`${id}\` not measured: ${why}`);
  const markdown = [
    "## 3. Streaming",
    "",
    `${result.concurrency} concurrent streams, ${result.durationS} s per run, ${result.repeats} repeat(s). Each stream: ` +
      `${result.chunks} content chunks, ${result.firstMs} ms before the first, ${result.gapMs} ms apart, then the usage chunk ` +
      "and `[DONE]` (the Go client times every content delta).",
    "**TTFT**: request sent → first content delta (percentiles over the streams of all repeats pooled). **gap**: time between two deltas of a stream (ideal: the fake's " +
      `${result.gapMs} ms). **transit**: the fake wrote the chunk → the client read it (the fake stamps CLOCK_MONOTONIC into ` +
      "each chunk; one machine, one clock) — the cleanest measure of what a proxy adds per chunk. Added = target p99 − direct p99 (TTFT: pooled; gap, transit: median of the runs' p99).",
    "",
    table(
      [
        "target",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "added TTFT p99 µs",
        "gap p99 ms",
        "added gap p99 µs",
        "transit p50 µs",
        "transit p99 µs",
        "added transit p99 µs",
        "proxy CPU µs/chunk",
        "streams",
        "errors",
        "clean runs",
        "check",
      ],
      rows,
    ),
    "",
    ...(ids.includes("portkey")
      ? ["¹ Portkey 1.15.2 sleeps 25 ms before writing the first SSE event; its TTFT includes that sleep."]
      : []),
    ...(skipped.length ? ["", ...skipped] : []),
    "",
    "![streaming](CHART:streaming)",
  ].join("\n");
  const svg = barChart({
    title: "Streaming: added p99 vs direct (Portkey TTFT omitted: 25 ms sleep)",
    unit: "µs",
    categories: chart.labels,
    series: [
      { name: "added TTFT p99", values: chart.ttft },
      { name: "added gap p99", values: chart.gap },
      { name: "added transit p99", values: chart.transit },
    ],
  });
  return { markdown, charts: [{ name: "streaming", svg }], checks };
}
