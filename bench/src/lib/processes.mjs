// Child processes of the harness: servers (fake, proxies) and tools (wrk, h2load, the Go
// client). Every child is pinned with taskset, tracked, and killed when the harness exits for
// any reason — the machine is shared, nothing may outlive a run.
import { spawn } from "node:child_process";

const live = new Set();

function killAll(signal) {
  for (const child of live) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

process.on("exit", () => killAll("SIGKILL"));
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    killAll("SIGKILL");
    process.exit(130);
  });
}

/** Prefixes `taskset -c CPU` when a CPU is given (taskset execs, so the PID is the program's). */
function pinned(cpu, command, args) {
  return cpu === undefined || cpu === null ? [command, args] : ["taskset", ["-c", String(cpu), command, ...args]];
}

function track(child) {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Starts a long-running server and resolves once `ready(line)` returns a value for one of its
 * stdout lines (e.g. the parsed "listening" JSON), or once the optional async `probe()` (polled
 * every 100 ms) returns true. Rejects on early exit or timeout, with the tail of stderr so a
 * broken target explains itself in the report.
 */
export function startServer({ name, command, args, cpu, cwd, env, ready, probe, timeoutMs = 30_000 }) {
  const [cmd, argv] = pinned(cpu, command, args);
  const child = track(spawn(cmd, argv, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }));
  const stderr = [];
  child.stderr.setEncoding("utf8").on("data", (text) => {
    stderr.push(text);
    if (stderr.length > 50) stderr.shift();
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const handle = {
    name,
    pid: child.pid,
    stderrTail: () => stderr.join("").slice(-2000),
    exited,
    /** SIGTERM, then SIGKILL if still running after `graceMs`. Resolves with the exit status. */
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
  };
  return new Promise((resolve, reject) => {
    let buffer = "";
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...handle, ready: value });
    };
    const timer = setTimeout(() => {
      settled = true;
      child.kill("SIGKILL");
      reject(new Error(`${name}: not ready after ${timeoutMs} ms\n${handle.stderrTail()}`));
    }, timeoutMs);
    if (probe) {
      const poll = async () => {
        if (settled) return;
        if (await probe()) finish(true);
        else setTimeout(poll, 100);
      };
      setTimeout(poll, 100);
    }
    child.stdout.setEncoding("utf8").on("data", (text) => {
      // Once ready, the output (an access log at info) is only drained, never parsed: the
      // server must not block on a full pipe, and the harness must not spend CPU on it.
      if (settled) return;
      buffer += text;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const value = ready(line);
        if (value !== undefined) finish(value);
      }
      if (buffer.length > 1 << 20) buffer = ""; // a chatty server must not grow this forever
    });
    child.once("exit", (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${name}: exited before ready (code ${code}, signal ${signal})\n${handle.stderrTail()}`));
    });
  });
}

/** Runs a tool to completion (bounded by `timeoutMs`) and returns its exit code and output. */
export function runTool({ command, args, cpu, cwd, env, timeoutMs }) {
  const [cmd, argv] = pinned(cpu, command, args);
  const child = track(spawn(cmd, argv, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }));
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text) => (stderr = (stderr + text).slice(-8000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut: signal === "SIGKILL" });
    });
  });
}

/** Parses the first stdout line that is a JSON object with the given `msg`. */
export function jsonLine(msg) {
  return (line) => {
    if (!line.startsWith("{")) return undefined;
    try {
      const value = JSON.parse(line);
      return value.msg === msg ? value : undefined;
    } catch {
      return undefined;
    }
  };
}
