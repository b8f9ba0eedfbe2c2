// Markdown helpers shared by the report sections.
import { spread } from "../lib/stats.mjs";

export function table(headers, rows) {
  const line = (cells) => `| ${cells.map((c) => String(c ?? "").replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

/** A number with sensible precision; "–" when missing. */
export function num(value, digits) {
  if (!Number.isFinite(value)) return "–";
  if (digits !== undefined) return value.toFixed(digits);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A difference with its sign: "+12.0", "−7.5". */
export function signed(value, digits) {
  if (!Number.isFinite(value)) return "–";
  return value < 0 ? `−${num(-value, digits)}` : `+${num(value, digits)}`;
}

/** "median (min–max)" of repeated runs; just the median when there is one run. */
export function spreadCell(values, digits) {
  const s = spread(values);
  if (s.n === 0) return "–";
  if (s.n === 1 || s.min === s.max) return num(s.median, digits);
  return `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`;
}

export function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN;
}

/** Pass/fail cell; "–" when the check does not apply or the value is missing. */
export function check(ok) {
  if (ok === undefined || ok === null) return "–";
  return ok ? "✅ pass" : "❌ fail";
}

/** A check for the summary table: `ok` undefined means "could not be measured". */
export function makeCheck(name, target, value, ok) {
  return { name, target, value, ok };
}

/** Above this share of the proxy's core taken by others during a run, the run counts as contended. */
export const MAX_FOREIGN_PCT = 20;

/** A run is clean when the machine was quiet before it and nobody took the proxy's core during it. */
export function isClean(run) {
  return Boolean(run.quiet?.quiet) && !(run.foreignPct > MAX_FOREIGN_PCT);
}

/** How many of a target's runs were clean, e.g. "3/3". */
export function quietCell(runs) {
  return `${runs.filter(isClean).length}/${runs.length}`;
}
