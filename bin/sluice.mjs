#!/usr/bin/env node
// The `sluice` command (`npm start`, `npx sluice`, the container's entrypoint): runs the
// compiled gateway in dist/, first compiling it when the sources are newer than the last
// build — so `npm start` after a fresh clone or an edit just works, and every other start
// (or `--help`) begins at once instead of re-running the TypeScript compiler.
// Without sources or a compiler (a production install, the container image), dist/ is run as it is.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "dist", "src", "main.js");
const stamp = join(root, "dist", ".build-stamp");
const compiler = join(root, "node_modules", "typescript", "bin", "tsc");

/** The newest modification time under `path` (a file or a directory tree), 0 when it is missing. */
function newest(path) {
  let info;
  try {
    info = statSync(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory()) return info.mtimeMs;
  let latest = info.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const inputs = ["src", "gen", "tsconfig.json", "tsconfig.build.json", "package-lock.json"].map((name) => join(root, name));
const canBuild = existsSync(join(root, "src")) && existsSync(compiler);
if (canBuild) {
  const builtAt = existsSync(entry) ? newest(stamp) : 0;
  if (builtAt === 0 || inputs.some((input) => newest(input) > builtAt)) {
    process.stderr.write("sluice: compiling TypeScript (sources changed since the last build)…\n");
    const startedAt = Date.now();
    const result = spawnSync(process.execPath, [compiler, "-p", join(root, "tsconfig.build.json")], {
      cwd: root,
      stdio: "inherit",
    });
    if (result.status !== 0) {
      process.stderr.write("sluice: the build failed (above)\n");
      process.exit(1);
    }
    // The stamp's time is when the build began: a source saved during it counts as newer.
    const began = new Date(startedAt);
    writeFileSync(stamp, `${began.toISOString()}\n`);
    utimesSync(stamp, began, began);
  }
} else if (!existsSync(entry)) {
  process.stderr.write(
    `sluice: ${entry} is missing and cannot be built here (no src/ or no TypeScript): run \`npm ci\` in the repository\n`,
  );
  process.exit(1);
}
await import(pathToFileURL(entry).href);
