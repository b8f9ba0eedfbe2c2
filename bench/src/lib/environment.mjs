// The environment a run was taken in, for the report: versions, hardware, pinning, load.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { openFilesLimit } from "./machine.mjs";
import { runtimeFlags } from "../targets/servers.mjs";

/** A tool's output; `fallback` when it fails (wrk -v exits 1 after printing its version: keep that output). */
function tryRun(command, args, fallback) {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 }).trim();
  } catch (error) {
    return fallback ?? (`${error.stdout ?? ""}${error.stderr ?? ""}`.trim() || "unavailable");
  }
}

export function collectEnvironment({ mainDir, benchDir }) {
  const pkg = (name) => {
    try {
      return JSON.parse(readFileSync(join(benchDir, "node_modules", name, "package.json"), "utf8")).version;
    } catch {
      return "not installed";
    }
  };
  // SLUICE_DIR may point at a copy that is not a git checkout.
  const dirty = tryRun("git", ["-C", mainDir, "status", "--porcelain", "--", "src", "gen", "package.json"], "");
  return {
    date: new Date().toISOString(),
    gitSha: tryRun("git", ["-C", mainDir, "rev-parse", "--short", "HEAD"], "nogit"),
    gitDirty: dirty !== "",
    node: process.version,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    openFiles: openFilesLimit(),
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    wrk: tryRun("wrk", ["-v"]).split("\n")[0],
    h2load: tryRun("h2load", ["--version"]).split("\n")[0],
    go: tryRun("go", ["version"]),
    portkey: pkg("@portkey-ai/gateway"),
    honoNodeServer: pkg("@hono/node-server"),
    undici: pkg("undici"),
    runtimeFlags: runtimeFlags(mainDir),
  };
}
