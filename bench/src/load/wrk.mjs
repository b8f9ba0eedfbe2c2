// wrk (HTTP/1.1, C, one thread on the load core). A Lua script sets the POST and prints the
// results as one JSON line from done(), so nothing depends on wrk's human-readable output.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runTool } from "../lib/processes.mjs";

let scripts = 0;

function luaString(text) {
  // A long bracket string: no escaping needed unless the text contains the closing bracket.
  if (text.includes("]==]")) throw new Error("request body contains ]==]");
  return `[==[${text}]==]`;
}

/** Writes the Lua script for one request shape; returns its path. */
export function wrkScript(dir, { body, headers }) {
  const path = join(dir, `wrk-${++scripts}.lua`);
  const lines = [
    'wrk.method = "POST"',
    `wrk.body = ${luaString(body.toString("utf8"))}`,
    ...Object.entries(headers).map(([name, value]) => `wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`),
    "done = function(summary, latency, requests)",
    "  local e = summary.errors",
    '  io.write(string.format("BENCHJSON {\\"requests\\":%d,\\"durationUs\\":%d,\\"bytes\\":%d,' +
      '\\"errors\\":{\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d},' +
      '\\"latencyUs\\":{\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"p999\\":%d,\\"max\\":%d,\\"mean\\":%.1f}}\\n",',
    "    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,",
    "    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),",
    "    latency.max, latency.mean))",
    "end",
  ];
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

/**
 * Runs wrk for `durationS` at `connections` concurrent connections (closed loop: each
 * connection sends its next request when the previous answer arrives).
 * Returns { rps, requests, errors, latencyUs: {p50,p90,p99,p999,max,mean} }.
 */
export async function runWrk({ url, script, connections, durationS, cpu }) {
  const result = await runTool({
    command: "wrk",
    args: ["-t1", `-c${connections}`, `-d${durationS}s`, "--timeout", "10s", "-s", script, url],
    cpu,
    timeoutMs: (durationS + 20) * 1000,
  });
  const line = result.stdout.split("\n").find((l) => l.startsWith("BENCHJSON "));
  if (result.code !== 0 || !line) {
    throw new Error(`wrk failed (code ${result.code}): ${result.stderr.slice(-500)} ${result.stdout.slice(-500)}`);
  }
  const data = JSON.parse(line.slice("BENCHJSON ".length));
  const errors = Object.values(data.errors).reduce((a, b) => a + b, 0);
  return {
    tool: "wrk",
    requests: data.requests,
    rps: data.requests / (data.durationUs / 1e6),
    errors,
    errorDetail: data.errors,
    latencyUs: data.latencyUs,
  };
}
