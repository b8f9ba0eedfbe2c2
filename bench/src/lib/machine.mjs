// What the machine is doing: per-core CPU from /proc/stat, per-process CPU and RSS from
// /proc/PID, and a bounded wait for quiet before each measured run. On a shared 2-core box,
// a run taken while something else burns CPU is noise; we wait for quiet, and when quiet never
// comes we still run but record how busy the machine was so the report can say so.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** Per-core jiffies: { busy, total } for cpu0, cpu1, … */
export function coreTimes() {
  const cores = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = match[2].split(/\s+/).map(Number);
    const idleAll = idle + iowait;
    const total = user + nice + system + idleAll + irq + softirq + steal;
    cores[Number(match[1])] = { busy: total - idleAll, total };
  }
  return cores;
}

/** Busy percentage of each core between two coreTimes() snapshots. */
export function busyPercent(before, after) {
  return after.map((core, i) => {
    const total = core.total - before[i].total;
    return total > 0 ? (100 * (core.busy - before[i].busy)) / total : 0;
  });
}

/** CPU seconds (user + system) a process has used so far; NaN once it is gone. */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process in kB (VmRSS), NaN once it is gone. */
export function rssKb(pid) {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * Waits until every core has been at most `maxBusyPct` busy over a 0.5 s window, for at most
 * `maxWaitMs`. Our own servers idle between runs, so what is left is someone else's load.
 */
export async function waitQuiet({ maxWaitMs, maxBusyPct }) {
  const started = Date.now();
  let busy;
  for (;;) {
    const before = coreTimes();
    await sleep(500);
    busy = busyPercent(before, coreTimes());
    const quiet = busy.every((pct) => pct <= maxBusyPct);
    if (quiet || Date.now() - started >= maxWaitMs) {
      return { quiet, busyPct: busy.map(round1), waitedMs: Date.now() - started, loadavg: os.loadavg().map(round2) };
    }
  }
}

/**
 * Runs `fn` while accounting CPU: per-core busy % and each watched process's CPU seconds.
 * The proxy is pinned to its own core, so that core's busy % minus the proxy's own share is
 * CPU someone else took from it during the run.
 */
export async function withCpuAccounting(pids, fn) {
  const coresBefore = coreTimes();
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid)]));
  const startedNs = process.hrtime.bigint();
  const value = await fn();
  const wallS = Number(process.hrtime.bigint() - startedNs) / 1e9;
  const cpuS = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, round3(processCpuSeconds(pid) - cpuBefore[name])]),
  );
  return {
    value,
    cpu: { wallS: round3(wallS), coreBusyPct: busyPercent(coresBefore, coreTimes()).map(round1), processCpuS: cpuS },
  };
}

/** Soft limit on open files for this process (children inherit it). */
export function openFilesLimit() {
  const match = /Max open files\s+(\d+|unlimited)/.exec(readFileSync("/proc/self/limits", "utf8"));
  return match ? (match[1] === "unlimited" ? Infinity : Number(match[1])) : Number.NaN;
}

function round1(x) {
  return Math.round(x * 10) / 10;
}
function round2(x) {
  return Math.round(x * 100) / 100;
}
function round3(x) {
  return Math.round(x * 1000) / 1000;
}
