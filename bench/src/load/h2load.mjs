// h2load (nghttp2, C) for h2c and gRPC. It prints no percentiles, so latencies come from its
// per-request log file. It also cannot read gRPC trailers: a gRPC error is an HTTP 200 with
// an empty body, so we compare the DATA bytes per response with what a verified call returned.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runTool } from "../lib/processes.mjs";
import { percentileSorted } from "../lib/stats.mjs";

let logs = 0;

function parseBytes(text, label) {
  // e.g. "654.23KB (669940) data"
  const match = new RegExp(`\\((\\d+)\\) ${label}`).exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/**
 * One client connection per concurrent request (-c N -m 1), mirroring wrk's N connections.
 * Returns { rps, requests, errors, latencyUs, dataBytesPerResponse }.
 */
export async function runH2load({ url, bodyFile, headers, connections, durationS, cpu, dir }) {
  const logFile = join(dir, `h2load-${++logs}.log`);
  const args = ["-c", String(connections), "-m", "1", "-t", "1", "-D", String(durationS), "-d", bodyFile];
  for (const [name, value] of Object.entries(headers)) args.push("-H", `${name}: ${value}`);
  args.push("--log-file", logFile, url);
  const result = await runTool({ command: "h2load", args, cpu, timeoutMs: (durationS + 20) * 1000 });
  const out = result.stdout;
  const requests =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(out);
  if (result.code !== 0 || !requests || !finished) {
    throw new Error(`h2load failed (code ${result.code}): ${result.stderr.slice(-500)} ${out.slice(-800)}`);
  }
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const succeeded = Number(requests[4]);
  const latencies = [];
  try {
    for (const row of readFileSync(logFile, "utf8").split("\n")) {
      const [, code, us] = row.split("\t");
      if (code === "200") latencies.push(Number(us));
    }
  } finally {
    rmSync(logFile, { force: true });
  }
  latencies.sort((a, b) => a - b);
  const mean = latencies.reduce((s, x) => s + x, 0) / (latencies.length || 1);
  const non2xx = status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : 0;
  return {
    tool: "h2load",
    requests: succeeded,
    rps: Number(finished[3]),
    errors: Number(requests[5]) + Number(requests[6]) + Number(requests[7]) + non2xx,
    latencyUs: {
      p50: percentileSorted(latencies, 0.5),
      p90: percentileSorted(latencies, 0.9),
      p99: percentileSorted(latencies, 0.99),
      p999: percentileSorted(latencies, 0.999),
      max: latencies.at(-1) ?? Number.NaN,
      mean: Math.round(mean * 10) / 10,
    },
    dataBytesPerResponse: succeeded > 0 ? parseBytes(out, "data") / succeeded : Number.NaN,
  };
}
