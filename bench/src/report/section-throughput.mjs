// Report section for scenario 2 (throughput at c=32 / c=256, zero-delay and 20 ms fake).
import { median } from "../lib/stats.mjs";
import { check, makeCheck, num, quietCell, ratio, spreadCell, table } from "./format.mjs";
import { barChart } from "./svg.mjs";

const MIN_RATIO_TO_PASS_THROUGH = 0.8;

function describe(config) {
  return `c=${config.connections}, ${config.workload === "unary" ? "zero-delay fake" : "20 ms fake"}`;
}

export function throughputSection(result, targets) {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const parts = [
    "## 2. Throughput",
    "",
    `Closed loop (each connection sends its next request when the answer arrives), ${result.durationS} s per run, ` +
      `${result.repeats} repeat(s). req/s: median (min–max). **× floor**: against the same load generator's direct run; ` +
      "**× pass-through**: against the bare Node proxy over HTTP/1.1 (the ceiling for a Node gateway; the target's measure). " +
      "**× same-protocol ceiling**: against the bare pass-through behind the same front end (node:http2 for h2c targets) — " +
      "how much of a gRPC gap is Node's HTTP/2 stack rather than the gateway. " +
      "**proxy CPU µs/req**: the proxy process's CPU time divided by requests served — steadier than req/s on a shared machine.",
  ];
  const checks = [];
  const worst = new Map(); // sluice target → { ratio, config }
  const chartSeries = [];
  const labels = [];
  for (const config of result.configs) {
    const ids = Object.keys(config.runs);
    const rpsOf = (id) => median(config.runs[id]?.map((r) => r.rps) ?? []);
    const rows = [];
    const values = [];
    for (const id of ids) {
      const target = byId.get(id);
      const runs = config.runs[id];
      const rps = rpsOf(id);
      const toPassThrough = id === "pass-through" ? Number.NaN : ratio(rps, rpsOf("pass-through"));
      const ceilingId = target.proto === "h2" ? "pass-through-h2" : "pass-through";
      const toCeiling = id === ceilingId || target.role === "floor" ? Number.NaN : ratio(rps, rpsOf(ceilingId));
      const isSluice = target.role === "sluice";
      const ok = isSluice && Number.isFinite(toPassThrough) ? toPassThrough >= MIN_RATIO_TO_PASS_THROUGH : undefined;
      if (isSluice && Number.isFinite(toPassThrough)) {
        const prev = worst.get(id);
        if (!prev || toPassThrough < prev.ratio) worst.set(id, { ratio: toPassThrough, config: describe(config) });
      }
      rows.push([
        target.label,
        spreadCell(runs.map((r) => r.rps)),
        num(ratio(rps, rpsOf(target.floor)), 2),
        num(toPassThrough, 2),
        num(toCeiling, 2),
        spreadCell(
          runs.map((r) => r.latencyUs.p50 / 1000),
          2,
        ),
        spreadCell(
          runs.map((r) => r.latencyUs.p99 / 1000),
          2,
        ),
        spreadCell(runs.map((r) => (r.cpu.processCpuS.proxy * 1e6) / r.requests)),
        runs.reduce((s, r) => s + r.errors, 0) + (runs.some((r) => r.suspectErrors) ? " (suspect)" : ""),
        quietCell(runs),
        check(ok),
      ]);
      values.push([target.label, rps]);
    }
    parts.push(
      "",
      `### ${describe(config)}`,
      "",
      table(
        [
          "target",
          "req/s",
          "× floor",
          "× pass-through",
          "× same-protocol ceiling",
          "p50 ms",
          "p99 ms",
          "proxy CPU µs/req",
          "errors",
          "clean runs",
          `≥ ${MIN_RATIO_TO_PASS_THROUGH}× pass-through`,
        ],
        rows,
      ),
    );
    chartSeries.push({ name: describe(config), values: new Map(values) });
    for (const [label] of values) if (!labels.includes(label)) labels.push(label);
  }
  for (const [id, { ratio: r, config }] of worst) {
    checks.push(
      makeCheck(
        `throughput ≥ ${MIN_RATIO_TO_PASS_THROUGH}× pass-through (worst config)`,
        id,
        `${num(r, 2)}× at ${config}`,
        r >= MIN_RATIO_TO_PASS_THROUGH,
      ),
    );
  }
  parts.push("", "![throughput](CHART:throughput)");
  const svg = barChart({
    title: "Throughput (req/s, median of repeats)",
    unit: "req/s",
    categories: labels,
    series: chartSeries.map((s) => ({ name: s.name, values: labels.map((l) => s.values.get(l) ?? null) })),
  });
  return { markdown: parts.join("\n"), charts: [{ name: "throughput", svg }], checks };
}
