import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { constants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freeLoopbackPort, inCI } from "./prometheus-server.js";

/**
 * A real redis-server for the Redis state store's tests (test/integration/redis-state.test.ts),
 * from the Debian package `redis-server` (.ci/run installs it). Missing outside CI, the tests
 * are skipped with that message; under CI=true they fail (as prometheus-server.ts does): a
 * green CI run must have run them. No persistence: `--save "" --appendonly no`, its dir a
 * temporary directory.
 */
export const redisServerPath = "/usr/bin/redis-server";
const redisPackage = "redis-server";

export interface RedisServer {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGTERM) and waits for its exit. Idempotent. */
  stop(): Promise<void>;
  /** Kills it (SIGKILL) and waits for its exit: a crash. Idempotent. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted); resolves once it answers PING. */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the Redis tests cannot run here (redis-server missing), or undefined when they can;
 * throws under CI=true. For a whole file (describe.skipIf), where no test context can skip.
 */
export async function redisMissing(): Promise<string | undefined> {
  if (await executable(redisServerPath)) return undefined;
  const what = `${redisServerPath} is missing (Debian package ${redisPackage})`;
  if (inCI) throw new Error(`${what}. Under CI=true the Redis state tests must run; .ci/run installs it.`);
  return `${what} (skipped outside CI)`;
}

/** The redis-server path if it can be run; otherwise skips the test (`ctx.skip`), or throws under CI=true. */
export async function requireRedis(skip: (note: string) => void): Promise<string> {
  const missing = await redisMissing();
  if (missing === undefined) return redisServerPath;
  skip(missing);
  throw new Error("unreachable: skip() throws");
}

/** True once a PING on 127.0.0.1:port is answered +PONG (false on a refused or silent connection, within 1 s). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      answer += chunk;
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
    socket.on("close", () => done(false));
  });
}

/** A redis-server on a free loopback port; resolves once it answers PING (within 10 s). */
export async function startRedis(binary = redisServerPath): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-redis-"));
  const port = await freeLoopbackPort();
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();

  async function launch(): Promise<void> {
    const process = spawn(
      binary,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    process.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    process.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child = process;
    exited = once(process, "exit");
    const deadline = Date.now() + 10_000;
    while (!(await pings(port))) {
      if (process.exitCode !== null || process.signalCode !== null) {
        throw new Error(`redis-server exited (${process.exitCode ?? process.signalCode}): ${output}`);
      }
      if (Date.now() > deadline) {
        process.kill("SIGKILL");
        throw new Error(`redis-server on port ${port} did not answer PING within 10 s: ${output}`);
      }
      await sleep(20);
    }
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const running = child;
    if (running === undefined) return;
    child = undefined;
    if (running.exitCode === null && running.signalCode === null) {
      running.kill(signal);
      await exited;
    }
  }

  try {
    await launch();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    async restart() {
      await end("SIGTERM");
      await launch();
    },
    async close() {
      await end("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    },
  };
}
