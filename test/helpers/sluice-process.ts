import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export interface SluiceProcess {
  /** http://127.0.0.1:PORT, from its "sluice listening" line. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Every stdout line so far (JSON log lines). */
  readonly lines: readonly string[];
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL (a crash) and waits for the exit. Idempotent. */
  kill(): Promise<void>;
  /** SIGTERM, waits for the exit (at most `withinMs`, then SIGKILL). Idempotent. */
  stop(withinMs?: number): Promise<void>;
}

/** A config document written to a temporary file (JSON, which the YAML loader reads), for `--config`. */
export async function writeConfigFile(document: Record<string, unknown>): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-process-"));
  const file = join(dir, "sluice.yaml");
  await writeFile(file, JSON.stringify(document, null, 1));
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A real Sluice process, as `npm run dev` runs it (`node --import tsx src/main.ts --config FILE`),
 * listening on 127.0.0.1 and a port of its own choosing; resolves with its URL once it logs
 * "sluice listening" (within `withinMs`), rejects with its stderr if it exits first.
 * Sluice's own environment variables (SLUICE_*, provider keys) are not passed on.
 */
export async function spawnSluice(configFile: string, withinMs = 20_000): Promise<SluiceProcess> {
  const { SLUICE_CONFIG: _c, SLUICE_LISTEN: _l, OPENAI_API_KEY: _o, ANTHROPIC_API_KEY: _a, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--config", configFile, "--listen", "127.0.0.1:0"], {
    cwd: repoRoot,
    env: inherited,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  let stderr = "";
  let partial = "";
  let onListening: ((url: string) => void) | undefined;
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      if (onListening !== undefined && line.includes('"msg":"sluice listening"')) {
        onListening((JSON.parse(line) as { url: string }).url);
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const running = () => child.exitCode === null && child.signalCode === null;

  let timer: NodeJS.Timeout | undefined;
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      onListening = resolve;
      timer = setTimeout(() => reject(new Error(`sluice did not listen within ${withinMs} ms; stderr: ${stderr}`)), withinMs);
      void exited.then((status) => reject(new Error(`sluice exited (${JSON.stringify(status)}) before listening: ${stderr}`)));
    });
  } catch (err) {
    if (running()) child.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
    onListening = undefined;
  }

  return {
    url,
    child,
    lines,
    stderr: () => stderr,
    exited,
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
    async stop(withinMs = 5_000) {
      if (running()) child.kill("SIGTERM");
      let killTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          killTimer = setTimeout(() => {
            if (running()) child.kill("SIGKILL");
            resolve();
          }, withinMs);
        }),
      ]);
      clearTimeout(killTimer);
      await exited;
    },
  };
}
