// Report section for scenario 1 (added latency at c=1).
import { median } from "../lib/stats.mjs";
import { check, makeCheck, num, quietCell, signed, spreadCell, table } from "./format.mjs";
import { barChart } from "./svg.mjs";

// Targets from the issue: Connect JSON unary at c=1; gRPC may be 1.5× those.
export const LATENCY_LIMITS = {
  "sluice-connect": { p50: 150, p99: 400 },
  "sluice-grpc": { p50: 225, p99: 600 },
  "sluice-openai": { p50: 150, p99: 400 },
};

export function latencySection(result, targets) {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const ids = Object.keys(result.runs);
  const medianOf = (id, key) => median(result.runs[id]?.map((r) => r.latencyUs[key]) ?? []);
  const rows = [];
  const checks = [];
  const chart = { added50: [], added99: [], labels: [] };
  for (const id of ids) {
    const target = byId.get(id);
    const runs = result.runs[id];
    const floor = target.floor;
    const added = (key) => (id === floor ? Number.NaN : medianOf(id, key) - medianOf(floor, key));
    const add50 = added("p50");
    const add99 = added("p99");
    const limit = LATENCY_LIMITS[id];
    const ok = limit && Number.isFinite(add50) ? add50 <= limit.p50 && add99 <= limit.p99 : undefined;
    if (limit) {
      checks.push(
        makeCheck(
          `added latency p50 ≤ ${limit.p50} µs, p99 ≤ ${limit.p99} µs (c=1)`,
          id,
          `p50 ${signed(add50)} µs, p99 ${signed(add99)} µs`,
          ok,
        ),
      );
    }
    const cpuPerReq = runs.map((r) => (r.cpu.processCpuS.proxy * 1e6) / r.requests);
    rows.push([
      target.label,
      floor === id ? "(floor)" : floor,
      spreadCell(runs.map((r) => r.latencyUs.p50)),
      spreadCell(runs.map((r) => r.latencyUs.p99)),
      num(add50),
      num(add99),
      spreadCell(runs.map((r) => r.rps)),
      spreadCell(cpuPerReq),
      runs.reduce((s, r) => s + r.errors, 0) + (runs.some((r) => r.suspectErrors) ? " (suspect)" : ""),
      quietCell(runs),
      check(ok),
    ]);
    chart.labels.push(target.label);
    chart.added50.push(add50);
    chart.added99.push(add99);
  }
  const markdown = [
    "## 1. Added latency at concurrency 1",
    "",
    `One connection, one request at a time, ${result.durationS} s per run, ${result.repeats} repeat(s) interleaved across targets. ` +
      "Latencies in µs: median of the repeats (min–max). **Added** = target − its floor, on medians: HTTP/1.1 targets " +
      "(wrk) against `direct`, h2c targets (h2load) against `direct-h2`, so each load generator's own cost cancels out.",
    "",
    table(
      [
        "target",
        "floor",
        "p50 µs",
        "p99 µs",
        "added p50 µs",
        "added p99 µs",
        "req/s",
        "proxy CPU µs/req",
        "errors",
        "clean runs",
        "check",
      ],
      rows,
    ),
    "",
    "![added latency](CHART:latency)",
  ].join("\n");
  const svg = barChart({
    title: "Added latency at c=1 (target − floor)",
    unit: "µs",
    categories: chart.labels,
    series: [
      { name: "added p50", values: chart.added50 },
      { name: "added p99", values: chart.added99 },
    ],
  });
  return { markdown, charts: [{ name: "latency", svg }], checks };
}
