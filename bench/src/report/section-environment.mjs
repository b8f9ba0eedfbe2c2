// Report header: environment, what ran where, how noisy the machine was, and the pass/fail summary.
import { check, isClean, MAX_FOREIGN_PCT, num, table } from "./format.mjs";

/** Every measured run of every scenario, flattened (for the noise summary). */
function allRuns(results) {
  const runs = [];
  const add = (byTarget) => {
    for (const [id, list] of Object.entries(byTarget ?? {})) for (const run of list) runs.push({ id, ...run });
  };
  add(results.latency?.runs);
  for (const config of results.throughput?.configs ?? []) add(config.runs);
  add(results.streaming?.runs);
  return runs;
}

/**
 * Noise: was the machine quiet before each run, and how much CPU did *others* take from the
 * proxy core during proxy runs (core busy % minus the pinned proxy's own share).
 */
function noiseLines(results, settings) {
  const runs = allRuns(results);
  if (runs.length === 0) return [];
  const quiet = runs.filter((r) => r.quiet?.quiet).length;
  const clean = runs.filter(isClean).length;
  const maxBusyBefore = Math.max(...runs.map((r) => Math.max(...(r.quiet?.busyPct ?? [0]))));
  const foreign = runs
    .map((r) => r.foreignPct)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  const lines = [
    `- Runs started on a quiet machine (every core ≤ ${settings.quietMaxBusyPct}% busy over 0.5 s, bounded wait): **${quiet}/${runs.length}**; ` +
      `busiest core before a run: ${num(maxBusyBefore)}%.`,
  ];
  if (foreign.length) {
    lines.push(
      `- CPU others took from the proxy core during proxy runs (core busy − the proxy's own): median ${num(foreign[foreign.length >> 1])}%, ` +
        `max ${num(foreign.at(-1))}% (≈0 when quiet; clock-tick granularity ±2%).`,
    );
  }
  lines.push(
    `- **Clean runs** (quiet before, ≤ ${MAX_FOREIGN_PCT}% of the proxy core taken during): **${clean}/${runs.length}**. Tables count them per target.`,
  );
  return lines;
}

export function environmentSection({ env, settings, targets, results, checks }) {
  const pin =
    settings.cpus.proxy === undefined
      ? "none (fewer than 2 cores)"
      : `proxy under test on CPU ${settings.cpus.proxy}; fake upstream + load generators on CPU ${settings.cpus.load} (taskset)`;
  const skipped = targets.filter((t) => t.skip).map((t) => `- \`${t.id}\` skipped: ${t.skip}`);
  return [
    `# Sluice benchmark — ${env.date.slice(0, 10)} @ ${env.gitSha}${env.gitDirty ? " (uncommitted changes)" : ""}`,
    "",
    `Mode: **${settings.mode}**${settings.mode === "quick" ? " (smoke run: short, one repeat — not for comparison)" : ""}. ` +
      "All traffic on 127.0.0.1. Regenerate with `cd bench && npm run bench` (see bench/README.md).",
    "",
    "## Summary against targets",
    "",
    checks.length
      ? table(
          ["check", "target", "measured", "result"],
          checks.map((c) => [c.name, c.target, c.value, check(c.ok)]),
        )
      : "No Sluice target was measured.",
    "",
    "## Environment",
    "",
    table(
      ["", ""],
      [
        ["node", env.node],
        ["CPU", `${env.cpuModel}, ${env.cores} cores, ${env.memoryGb} GB RAM`],
        ["kernel", env.kernel],
        ["pinning", pin],
        ["load average at start / end", `${env.loadavgStart.join(", ")} / ${env.loadavgEnd?.join(", ") ?? "–"}`],
        ["open files limit", String(env.openFiles)],
        ["load generators", `${env.wrk}; ${env.h2load}; stream-client (${env.go})`],
        ["peer", `@portkey-ai/gateway ${env.portkey} (@hono/node-server ${env.honoNodeServer}), --headless`],
        ["pass-through", `node:http + undici ${env.undici}`],
        [
          "node flags (every Node proxy)",
          env.runtimeFlags?.length ? `${env.runtimeFlags.join(" ")} (from Sluice's \`npm start\`)` : "none",
        ],
        [
          "Sluice config",
          `log level ${settings.sluiceLog ?? "warn"}; ${settings.sluiceAuth === "off" ? "no tenants (anonymous)" : "one tenant, API key on every call"}; provider \`connections: 16384\`; one OpenAI provider → the fake`,
        ],
        [
          "request body",
          settings.body === "hello" || settings.body === undefined
            ? 'one user turn, "Hello"'
            : "a system prompt and three turns (~2 KB of JSON)",
        ],
        ["repeats", `${settings.repeats} (interleaved across targets)`],
      ],
    ),
    "",
    ...noiseLines(results, settings),
    ...(skipped.length ? ["", "Targets not measured:", "", ...skipped] : []),
  ].join("\n");
}
