import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { constants } from "node:fs";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Prometheus' own tools for the metrics tests: `promtool` (checks an exposition and alert
 * rules, runs rule unit tests) and a real `prometheus` server scraping Sluice. Both come
 * from the Debian package `prometheus` (.ci/run installs it). Missing outside CI, a test
 * is skipped with that message; under CI=true it fails (as test/clients does for its
 * toolchains): a green CI run must have run them.
 */
export const prometheusPackage = "prometheus";
export const promtoolPath = "/usr/bin/promtool";
export const prometheusPath = "/usr/bin/prometheus";
export const inCI = process.env["CI"] === "true";

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * `path` if it can be run; otherwise skips the test (`skip` is vitest's `ctx.skip`), or
 * throws under CI=true.
 */
export async function requireTool(path: string, skip: (note: string) => void): Promise<string> {
  if (await executable(path)) return path;
  const what = `${path} is missing (Debian package ${prometheusPackage})`;
  if (inCI) throw new Error(`${what}. Under CI=true the metrics tests must run; .ci/run installs it.`);
  skip(`${what} (skipped outside CI)`);
  throw new Error("unreachable: skip() throws");
}

export interface ToolRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command args` (in `cwd`), `input` on its stdin; resolves when it exits (bounded by 30 s, then killed). */
export async function runTool(
  command: string,
  args: readonly string[],
  options: { readonly input?: string; readonly cwd?: string } = {},
): Promise<ToolRun> {
  const timeoutMs = 30_000;
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], cwd: options.cwd });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.end(options.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const [code] = (await once(child, "exit")) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** A port free on 127.0.0.1 right now (bound and released: Prometheus takes a port number, not a socket). */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PrometheusOptions {
  /** `host:port` of each gateway, scraped as job "sluice". */
  readonly targets: readonly string[];
  /** Default /metrics. */
  readonly metricsPath?: string;
  /** Alert rule files to load (absolute paths), evaluated every `intervalMs` too. */
  readonly ruleFiles?: readonly string[];
  /** Scrape and rule evaluation interval. Default 200 ms. */
  readonly intervalMs?: number;
}

/** One sample of an instant vector: labels and value. */
export interface VectorSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PrometheusServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Runs an instant query; throws on a query error. */
  query(expr: string): Promise<VectorSample[]>;
  /**
   * Polls `expr` (every 100 ms, up to `withinMs`) until `accept` holds for its result, and
   * returns that result: for data that reaches Prometheus with its next scrape.
   */
  queryUntil(expr: string, accept: (result: VectorSample[]) => boolean, withinMs?: number): Promise<VectorSample[]>;
  /** Kills the server and removes its storage. Idempotent. */
  close(): Promise<void>;
}

/**
 * A real Prometheus on a free loopback port, scraping `targets` every `intervalMs`, its
 * TSDB in a temporary directory. Resolves once it answers `/-/ready`.
 */
export async function startPrometheus(binary: string, options: PrometheusOptions): Promise<PrometheusServer> {
  const interval = `${options.intervalMs ?? 200}ms`;
  const dir = await mkdtemp(join(tmpdir(), "sluice-prometheus-"));
  const config = [
    "global:",
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(options.ruleFiles?.length ? ["rule_files:", ...options.ruleFiles.map((file) => `  - ${JSON.stringify(file)}`)] : []),
    "scrape_configs:",
    "  - job_name: sluice",
    `    metrics_path: ${JSON.stringify(options.metricsPath ?? "/metrics")}`,
    `    static_configs: [{ targets: ${JSON.stringify(options.targets)} }]`,
  ].join("\n");
  const configFile = join(dir, "prometheus.yml");
  await writeFile(configFile, `${config}\n`);

  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = once(child, "exit");

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    })());

  async function query(expr: string): Promise<VectorSample[]> {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (body.status !== "success" || body.data === undefined) throw new Error(`query ${expr}: ${body.error ?? response.status}`);
    if (body.data.resultType !== "vector") throw new Error(`query ${expr}: a ${body.data.resultType}, not a vector`);
    return body.data.result.map((sample) => ({ metric: sample.metric, value: Number(sample.value[1]) }));
  }

  try {
    await pollUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${stderr}`);
        try {
          return (await fetch(`${url}/-/ready`)).status === 200;
        } catch {
          return false;
        }
      },
      "prometheus ready",
      20_000,
    );
  } catch (err) {
    await close();
    throw err;
  }

  return {
    url,
    query,
    async queryUntil(expr, accept, withinMs = 15_000) {
      let last: VectorSample[] = [];
      await pollUntil(
        async () => accept((last = await query(expr))),
        () => `${expr} (last result: ${JSON.stringify(last)})`,
        withinMs,
      );
      return last;
    },
    close,
  };
}

/** Resolves once `condition()` resolves true, asking every 100 ms; rejects after `withinMs` naming `what`. */
async function pollUntil(condition: () => Promise<boolean>, what: string | (() => string), withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${typeof what === "string" ? what : what()}`);
    await sleep(100);
  }
}
