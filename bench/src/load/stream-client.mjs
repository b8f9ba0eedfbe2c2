// The Go streaming client (bench/stream-client): built offline in GOPATH mode against the
// Debian Go packages (x/net/http2, protobuf's protowire, x/sys), cached in bench/.cache.
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTool } from "../lib/processes.mjs";

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SOURCE_DIR = join(BENCH_DIR, "stream-client");
const CACHE_DIR = join(BENCH_DIR, ".cache");
const BINARY = join(CACHE_DIR, "stream-client");

/** Builds the client when missing or older than its sources. Returns the binary's path. */
export async function buildStreamClient() {
  const newestSource = Math.max(
    ...readdirSync(SOURCE_DIR)
      .filter((name) => name.endsWith(".go"))
      .map((name) => statSync(join(SOURCE_DIR, name)).mtimeMs),
  );
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= newestSource) return BINARY;
  mkdirSync(CACHE_DIR, { recursive: true });
  const result = await runTool({
    command: "go",
    args: ["build", "-o", BINARY, "./stream-client"],
    cwd: BENCH_DIR,
    env: {
      GO111MODULE: "off",
      GOPATH: "/usr/share/gocode",
      GOPROXY: "off",
      GOFLAGS: "",
      GOCACHE: join(CACHE_DIR, "go-build"),
    },
    timeoutMs: 180_000,
  });
  if (result.code !== 0) throw new Error(`go build of stream-client failed:\n${result.stderr}`);
  return BINARY;
}

function headerArgs(headers) {
  return Object.entries(headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]);
}

/** Runs the client with `args` (see stream-client/main.go) and parses its JSON report. */
async function run(args, cpu, timeoutMs) {
  const result = await runTool({ command: BINARY, args, cpu, timeoutMs });
  if (result.code !== 0) throw new Error(`stream-client failed (code ${result.code}): ${result.stderr.slice(-800)}`);
  return JSON.parse(result.stdout);
}

/** One request; returns { httpStatus, grpcStatus, grpcMessage, bodyBytes, bodyHead, error }. */
export function streamClientOnce({ mode, url, bodyFile, headers, cpu }) {
  return run(["-once", "-mode", mode, "-url", url, "-body", bodyFile, ...headerArgs(headers)], cpu, 30_000);
}

/** Closed-loop streaming load; returns TTFT / gap / transit summaries in µs. */
export function streamClientLoad({ mode, url, bodyFile, headers, cpu, concurrency, durationS, expectChunks, streamS }) {
  const args = ["-mode", mode, "-url", url, "-body", bodyFile, ...headerArgs(headers)];
  args.push("-c", String(concurrency), "-duration", `${durationS}s`, "-expect-chunks", String(expectChunks));
  args.push("-conns", String(Math.max(1, Math.min(concurrency, 8))), "-stream-timeout", `${Math.ceil(streamS * 3 + 10)}s`);
  return run(args, cpu, (durationS + streamS * 3 + 30) * 1000);
}

/** Capacity ramp; returns RSS per step and after close. */
export function streamClientCapacity({
  mode,
  url,
  bodyFile,
  headers,
  cpu,
  steps,
  rampRate,
  settleS,
  rssPid,
  conns,
  after,
  fakeStatsUrl,
}) {
  const args = ["-capacity", "-mode", mode, "-url", url, "-body", bodyFile, ...headerArgs(headers)];
  args.push("-steps", steps.join(","), "-ramp-rate", String(rampRate), "-settle", `${settleS}s`);
  args.push("-rss-pid", String(rssPid), "-conns", String(conns), "-after", after.map((s) => `${s}s`).join(","));
  if (fakeStatsUrl) args.push("-fake-stats", fakeStatsUrl);
  const budgetS = steps.at(-1) / rampRate + steps.length * (settleS + 32) + Math.max(...after) + 30;
  return run(args, cpu, budgetS * 1000);
}

export const streamClientPaths = { BENCH_DIR, CACHE_DIR };
