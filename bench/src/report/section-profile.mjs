// Report section for scenario 5 (CPU profile: top frames by self time, and per package).
import { num, table } from "./format.mjs";

export function profileSection(result) {
  const head = ["## 5. CPU profile under load", ""];
  if (result.skipped) {
    return {
      markdown: [...head, `Not measured: ${result.skipped}`, ...(result.notes ?? []).map((n) => `- ${n}`)].join("\n"),
      charts: [],
      checks: [],
    };
  }
  const markdown = [
    ...head,
    `**${result.label}**, a fresh process under \`node --cpu-prof\`, unary load (wrk) at c=32 on the zero-delay fake for ` +
      `${result.durationS} s (${num(result.rps)} req/s while profiled — profiling slows it down). Self time over the load window ` +
      `only${result.windowed ? "" : " (window not applied: whole profile)"}: ${num(result.busyMs)} ms busy, ${num(result.idlePct)}% idle. ` +
      "Shares are of busy time.",
    ...(result.notes ?? []).map((n) => `- ${n}`),
    "",
    "### Top 15 functions by self time",
    "",
    table(
      ["#", "self %", "self ms", "function", "location", "package"],
      result.top.map((f, i) => [
        i + 1,
        num(f.pct, 1),
        num(f.selfMs),
        `\`${f.fn}\``,
        f.location ? `\`${f.location}\`` : "",
        f.package,
      ]),
    ),
    "",
    "### Self time by package",
    "",
    table(
      ["package", "self %", "self ms"],
      result.packages.slice(0, 12).map((p) => [p.package, num(p.pct, 1), num(p.selfMs)]),
    ),
  ].join("\n");
  return { markdown, charts: [], checks: [] };
}
