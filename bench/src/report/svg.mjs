// Two small SVG charts, written by hand: grouped horizontal bars (targets × series) and a line
// chart (capacity). No chart library: the report must build offline from the bench package alone.

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948"];
const FONT = 'font-family="system-ui, sans-serif"';

function esc(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Round numbers for axis ticks: 1, 2, 5 × 10^k steps. */
function niceTicks(min, max, count = 5) {
  const span = max - min || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  // From the step at or below min to the step at or above max, so every value is inside the axis.
  const first = Math.floor(min / step);
  const last = Math.ceil(max / step);
  const ticks = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

function fmt(value) {
  if (!Number.isFinite(value)) return "–";
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function legend(series, x, y) {
  return series
    .map((s, i) => {
      const lx = x + i * 170;
      return `<rect x="${lx}" y="${y - 9}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 14}" y="${y}" font-size="11" ${FONT}>${esc(s.name)}</text>`;
    })
    .join("");
}

/**
 * @param {{ title: string, unit: string, categories: string[], series: { name: string, values: (number|null)[] }[] }} chart
 */
export function barChart({ title, unit, categories, series, width = 760 }) {
  const labelW = 230;
  const barH = 12;
  const rowH = series.length * (barH + 2) + 10;
  const top = 48;
  const plotW = width - labelW - 70;
  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values, 1e-9));
  const lo = ticks[0];
  const hi = ticks.at(-1);
  const x = (v) => labelW + ((v - lo) / (hi - lo || 1)) * plotW;
  const height = top + categories.length * rowH + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold" ${FONT}>${esc(title)}</text>`,
    legend(series, 10, 36),
  ];
  for (const tick of ticks) {
    parts.push(`<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${height - 26}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(tick)}" y="${height - 12}" font-size="10" text-anchor="middle" ${FONT}>${fmt(tick)}</text>`);
  }
  parts.push(`<text x="${width - 10}" y="${height - 12}" font-size="10" text-anchor="end" ${FONT}>${esc(unit)}</text>`);
  categories.forEach((category, row) => {
    const y0 = top + row * rowH;
    parts.push(`<text x="${labelW - 8}" y="${y0 + rowH / 2}" font-size="11" text-anchor="end" ${FONT}>${esc(category)}</text>`);
    series.forEach((s, i) => {
      const v = s.values[row];
      if (!Number.isFinite(v)) return;
      const y = y0 + 4 + i * (barH + 2);
      const x0 = x(Math.min(0, v));
      const w = Math.max(1, Math.abs(x(v) - x(0)));
      parts.push(`<rect x="${x0}" y="${y}" width="${w}" height="${barH}" fill="${COLORS[i % COLORS.length]}"/>`);
      parts.push(`<text x="${x0 + w + 3}" y="${y + barH - 2}" font-size="10" ${FONT}>${fmt(v)}</text>`);
    });
  });
  parts.push(`<line x1="${x(0)}" y1="${top - 4}" x2="${x(0)}" y2="${height - 26}" stroke="#333"/>`);
  parts.push("</svg>");
  return parts.join("\n");
}

/**
 * @param {{ title: string, xLabel: string, yLabel: string, series: { name: string, points: {x:number,y:number}[] }[] }} chart
 */
export function lineChart({ title, xLabel, yLabel, series, width = 760, height = 360 }) {
  const left = 70;
  const right = 20;
  const top = 48;
  const bottom = 50;
  const points = series.flatMap((s) => s.points);
  const xt = niceTicks(0, Math.max(...points.map((p) => p.x), 1));
  const yt = niceTicks(0, Math.max(...points.map((p) => p.y), 1));
  const sx = (v) => left + (v / xt.at(-1)) * (width - left - right);
  const sy = (v) => height - bottom - (v / yt.at(-1)) * (height - top - bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold" ${FONT}>${esc(title)}</text>`,
    legend(series, 10, 36),
  ];
  for (const t of xt) {
    parts.push(`<line x1="${sx(t)}" y1="${top}" x2="${sx(t)}" y2="${height - bottom}" stroke="#eee"/>`);
    parts.push(`<text x="${sx(t)}" y="${height - bottom + 14}" font-size="10" text-anchor="middle" ${FONT}>${fmt(t)}</text>`);
  }
  for (const t of yt) {
    parts.push(`<line x1="${left}" y1="${sy(t)}" x2="${width - right}" y2="${sy(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${sy(t) + 3}" font-size="10" text-anchor="end" ${FONT}>${fmt(t)}</text>`);
  }
  parts.push(
    `<text x="${(left + width - right) / 2}" y="${height - 12}" font-size="11" text-anchor="middle" ${FONT}>${esc(xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${(top + height - bottom) / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${(top + height - bottom) / 2})" ${FONT}>${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${s.points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ")}"/>`,
    );
    for (const p of s.points) parts.push(`<circle cx="${sx(p.x)}" cy="${sy(p.y)}" r="3" fill="${color}"/>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}
