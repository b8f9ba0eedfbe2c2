// Re-renders a report from a run's raw results, without measuring again (after a report change):
//   node src/render.mjs results/<date>-<sha>.json
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { subfolderOf, writeReport } from "./report/write-report.mjs";

const file = process.argv[2];
if (!file) {
  console.error("usage: node src/render.mjs results/<date>-<sha>.json");
  process.exit(2);
}
const raw = JSON.parse(readFileSync(file, "utf8"));
// writeReport adds quick/ or partial/ itself: hand it the results root.
const resultsDir = subfolderOf(raw.settings) ? join(dirname(file), "..") : dirname(file);
const { mdPath } = writeReport({ resultsDir, ...raw });
console.log(mdPath);
