// Reads a V8 .cpuprofile (node --cpu-prof): self time per function and per package, over a
// time window. V8 stamps samples with its monotonic clock in µs (CLOCK_MONOTONIC on Linux,
// the clock behind process.hrtime), so the load window measured by the harness selects the
// samples taken under load and leaves process start-up out.

const SPECIAL = new Set(["(program)", "(garbage collector)", "(idle)", "(root)"]);

/** Where a frame's code lives: a package name, "node:internal", "sluice", or a V8 pseudo-frame. */
export function packageOf(url, functionName) {
  if (SPECIAL.has(functionName)) return functionName;
  if (!url) return "(native)";
  if (url.startsWith("node:")) return "node (built-in)";
  if (url.startsWith("wasm://")) return "wasm (undici's llhttp)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  if (url.includes("/dist/gen/")) return "sluice (generated)";
  if (url.includes("/dist/src/")) return "sluice";
  if (url.includes("/bench/src/")) return "bench (pass-through)";
  return url.replace(/^file:\/\//, "");
}

function shortUrl(url) {
  if (!url) return "";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + "/node_modules/".length);
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * @param {object} profile  parsed .cpuprofile
 * @param {{ fromUs?: number, toUs?: number, limit?: number }} window  monotonic µs bounds
 */
export function summarizeProfile(profile, { fromUs = -Infinity, toUs = Infinity, limit = 15 } = {}) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const functions = new Map();
  const packages = new Map();
  let t = profile.startTime;
  let windowUs = 0;
  let idleUs = 0;
  let allUs = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    // A sample stands for the time until the next one.
    const dt = timeDeltas[i + 1] ?? 0;
    allUs += dt;
    if (t < fromUs || t > toUs) continue;
    windowUs += dt;
    const { functionName, url, lineNumber } = nodes.get(samples[i]).callFrame;
    if (functionName === "(idle)") {
      idleUs += dt;
      continue;
    }
    const key = `${functionName}\u0000${url}\u0000${lineNumber}`;
    const entry = functions.get(key) ?? {
      fn: functionName || "(anonymous)",
      location: url ? `${shortUrl(url)}:${lineNumber + 1}` : "",
      package: packageOf(url, functionName),
      selfUs: 0,
    };
    entry.selfUs += dt;
    functions.set(key, entry);
    packages.set(entry.package, (packages.get(entry.package) ?? 0) + dt);
  }
  const busyUs = windowUs - idleUs;
  const pct = (us) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    windowed: windowUs < allUs,
    windowMs: windowUs / 1000,
    busyMs: busyUs / 1000,
    idlePct: windowUs > 0 ? (100 * idleUs) / windowUs : 0,
    top: [...functions.values()]
      .sort((a, b) => b.selfUs - a.selfUs)
      .slice(0, limit)
      .map((f) => ({ fn: f.fn, location: f.location, package: f.package, selfMs: f.selfUs / 1000, pct: pct(f.selfUs) })),
    packages: [...packages.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ package: name, selfMs: us / 1000, pct: pct(us) })),
  };
}
