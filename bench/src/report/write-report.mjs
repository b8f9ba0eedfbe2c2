// Assembles the markdown report and its SVG charts, and writes them with the raw results:
//   results/<date>-<sha>.md, results/<date>-<sha>-<chart>.svg, results/<date>-<sha>.json, results/latest.md
// Quick (smoke) runs go to results/quick/ and partial runs (--only, --targets) to results/partial/ instead, so
// neither replaces a full run's report or latest.md (a partial run at the same commit would overwrite its files).
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { capacitySection } from "./section-capacity.mjs";
import { environmentSection } from "./section-environment.mjs";
import { latencySection } from "./section-latency.mjs";
import { profileSection } from "./section-profile.mjs";
import { streamingSection } from "./section-streaming.mjs";
import { throughputSection } from "./section-throughput.mjs";
import { SCENARIOS } from "../settings.mjs";

const SECTIONS = {
  latency: latencySection,
  throughput: throughputSection,
  streaming: streamingSection,
  capacity: capacitySection,
  profile: profileSection,
};

export function writeReport({ resultsDir, env, settings, targets, results, stderrTails = [], profileFile }) {
  const subfolder = subfolderOf(settings);
  const dir = join(resultsDir, subfolder);
  mkdirSync(dir, { recursive: true });
  const stem = `${env.date.slice(0, 10)}-${env.gitSha}${env.gitDirty ? "-dirty" : ""}`;
  const sections = [];
  const checks = [];
  for (const [name, render] of Object.entries(SECTIONS)) {
    const result = results[name];
    if (!result) continue;
    if (result.error) {
      sections.push(`## ${name}\n\nThe scenario failed: \`${result.error.replace(/`/g, "'").slice(0, 600)}\``);
      continue;
    }
    const section = render(result, targets);
    let markdown = section.markdown;
    for (const chart of section.charts) {
      const file = `${stem}-${chart.name}.svg`;
      writeFileSync(join(dir, file), chart.svg);
      markdown = markdown.replace(`CHART:${chart.name}`, file);
    }
    sections.push(markdown);
    checks.push(...section.checks);
  }
  const header = environmentSection({ env, settings, targets, results, checks });
  const report = [header, ...sections, stderrSection(stderrTails), notesSection()].filter(Boolean).join("\n\n");
  const mdPath = join(dir, `${stem}.md`);
  writeFileSync(mdPath, `${report}\n`);
  copyFileSync(mdPath, join(dir, "latest.md"));
  const publicTargets = targets.map(({ id, label, role, proto, floor, skip }) => ({ id, label, role, proto, floor, skip }));
  const raw = {
    env,
    settings: { ...settings, targetFilter: undefined, subfolder },
    targets: publicTargets,
    results,
    stderrTails,
  };
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(raw, null, 1)}\n`);
  if (profileFile) copyFileSync(profileFile, join(dir, `${stem}.cpuprofile`));
  return { mdPath, dir, stem };
}

/** "" for a full run, "quick" for a smoke run, "partial" for one that left scenarios or targets out. */
export function subfolderOf(settings) {
  // Re-rendered raw results say where they were written (their target filter is not kept).
  if (typeof settings.subfolder === "string") return settings.subfolder;
  if (settings.mode === "quick") return "quick";
  const partial =
    (settings.scenarios && settings.scenarios.length < SCENARIOS.length) ||
    (settings.targetFilter && settings.targetFilter.size > 0);
  return partial ? "partial" : "";
}

/** What the servers wrote to stderr (e.g. MaxListenersExceededWarning): often the first hint of a leak. */
function stderrSection(tails) {
  if (tails.length === 0) return "";
  return [
    "## Server stderr (last lines)",
    "",
    ...tails.flatMap(({ name, text }) => [`**${name}**`, "", "```", text.slice(-1500), "```", ""]),
  ].join("\n");
}

function notesSection() {
  return [
    "## How to read this",
    "",
    "- Every number is the median of the repeats; (min–max) is the spread. A wide spread means a noisy machine, not a result.",
    "- Floors: `direct` (wrk → fake over HTTP/1.1) and `direct-h2` (h2load → fake over h2c) cost what the load generator and the",
    "  fake cost alone. Added latency compares a target with the floor of the same load generator.",
    "- gRPC is driven by h2load with a pre-built length-prefixed protobuf frame. h2load sees only HTTP statuses; each gRPC target is",
    "  verified first (grpc-status 0 in the trailers, expected answer), and every run's DATA bytes per response are compared with the",
    "  verified answer (`(suspect)` in the errors column when they fall short).",
    "- The proxy under test is pinned to one core; the fake upstream and the load generator share the other. A proxy that is",
    "  faster than the fake + load generator can feed it would be capped by that core — compare its CPU µs/req then.",
  ].join("\n");
}
