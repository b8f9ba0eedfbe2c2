import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { selfSignedCert } from "../helpers/self-signed-cert.js";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { connectJsonTransport } from "../helpers/protocol-clients.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

interface Running {
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** Resolves with the first stdout line matching. */
  waitForLine(test: (line: string) => boolean): Promise<string>;
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `src/main.ts` as `npm run dev` does (tsx), with a clean environment for Sluice's variables. */
function run(args: string[], env: Record<string, string> = {}): Running {
  const { SLUICE_CONFIG: _c, SLUICE_LISTEN: _l, OPENAI_API_KEY: _o, ANTHROPIC_API_KEY: _a, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: repoRoot,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: string[] = [];
  const waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const waiter of waiters.filter((w) => w.test(line))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLine(test) {
      const found = lines.find(test);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        waiters.push({ test, resolve });
        void exited.then(() => reject(new Error(`exited before the line; stderr: ${stderr}`)));
      });
    },
  };
}

const isListening = (line: string): boolean => line.includes('"msg":"sluice listening"');

describe("main (the sluice command)", () => {
  it("--listen 127.0.0.1:0 logs one 'sluice listening' line with the real URL, serves, and exits 0 on SIGTERM", async () => {
    const sluice = run(["--listen", "127.0.0.1:0"]);
    const line = JSON.parse(await sluice.waitForLine(isListening)) as { url: string; msg: string };
    expect(line.url).toMatch(/^http:\/\/127\.0\.0\.1:(\d+)$/);
    expect(line.url).not.toMatch(/:0$/);

    const transport = connectJsonTransport(line.url);
    const response = await createClient(ChatService, transport.transport).complete({
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
    });
    expect(response.provider).toBe("demo");

    sluice.child.kill("SIGTERM");
    expect(await sluice.exited).toEqual({ code: 0, signal: null });
    expect(sluice.lines.filter(isListening)).toHaveLength(1);
  });

  it("a bad configuration: its message on stderr, exit 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-main-"));
    dirs.push(dir);
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "providers: {}\nmodels:\n  m:\n    deployments: [{ provider: ghost, model: x }]\n");
    const sluice = run(["--config", file]);
    expect(await sluice.exited).toEqual({ code: 2, signal: null });
    expect(sluice.stderr()).toContain("models.m.deployments.0.provider");
    expect(sluice.lines.filter(isListening)).toHaveLength(0);
  });

  it("a provider key file that cannot be read: its path (never a key) on stderr, exit 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-main-"));
    dirs.push(dir);
    const file = join(dir, "keys.yaml");
    const missing = join(dir, "no-such-keys");
    writeFileSync(
      file,
      `providers:\n  oai: { type: openai, apiKeyFile: ${missing} }\nmodels:\n  m:\n    deployments: [{ provider: oai, model: x }]\n`,
    );
    const sluice = run(["--config", file]);
    expect(await sluice.exited).toEqual({ code: 2, signal: null });
    expect(sluice.stderr()).toContain(missing);
    expect(sluice.stderr()).not.toContain("    at ");
    expect(sluice.lines.filter(isListening)).toHaveLength(0);
  });

  it("an mTLS client CA file that cannot be read: its path on stderr, exit 2", async () => {
    const cert = selfSignedCert();
    const dir = mkdtempSync(join(tmpdir(), "sluice-main-"));
    dirs.push(dir);
    try {
      const file = join(dir, "tls.yaml");
      const missing = join(dir, "no-such-ca.pem");
      writeFileSync(
        file,
        `server:\n  tls: { certFile: ${cert.certFile}, keyFile: ${cert.keyFile}, clientCaFile: ${missing} }\n` +
          "providers: { demo: { type: demo } }\nmodels:\n  demo: { deployments: [{ provider: demo, model: x }] }\n",
      );
      const sluice = run(["--config", file, "--listen", "127.0.0.1:0"]);
      expect(await sluice.exited).toEqual({ code: 2, signal: null });
      expect(sluice.stderr()).toContain(missing);
      expect(sluice.stderr()).not.toContain("    at ");
    } finally {
      cert.remove();
    }
  });

  it("refuses to serve anonymously beyond loopback: no tenants on 0.0.0.0 exits 2 saying why", async () => {
    const sluice = run(["--listen", "0.0.0.0:0"]);
    expect(await sluice.exited).toEqual({ code: 2, signal: null });
    expect(sluice.stderr()).toContain("with no authentication");
    expect(sluice.stderr()).toContain("auth.allowAnonymous");
    expect(sluice.lines.filter(isListening)).toHaveLength(0);
  });

  it("--mint-key prints a new key once and the config line with its hash", async () => {
    const minted = run(["--mint-key", "team-a", "--key-id", "ci"]);
    expect(await minted.exited).toEqual({ code: 0, signal: null });
    // Every line read: stdout may end after the process exited.
    if (!minted.child.stdout!.readableEnded) await once(minted.child.stdout!, "end");
    const text = minted.lines.join("\n");
    const key = /\b(sk-sluice-[A-Za-z0-9_-]{43})\b/.exec(text)?.[1];
    expect(key).toBeDefined();
    expect(text).toContain(`- { sha256: ${createHash("sha256").update(key!).digest("hex")}, id: ci }`);
  });

  it("--help prints usage and exits 0; an unknown flag exits 2", async () => {
    const help = run(["--help"]);
    const bad = run(["--nope"]);
    expect(await help.exited).toEqual({ code: 0, signal: null });
    expect(help.lines.join("\n")).toContain("--listen HOST:PORT");
    expect(await bad.exited).toEqual({ code: 2, signal: null });
    expect(bad.stderr()).toContain("--nope");
  });

  it("--version prints the package's version; --check validates a configuration and exits (0 valid, 2 not)", async () => {
    const version = run(["--version"]);
    expect(await version.exited).toEqual({ code: 0, signal: null });
    if (!version.child.stdout!.readableEnded) await once(version.child.stdout!, "end");
    const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
    expect(version.lines.join("\n")).toContain(`sluice ${manifest.version}`);

    const ok = run(["--check"]);
    expect(await ok.exited).toEqual({ code: 0, signal: null });
    if (!ok.child.stdout!.readableEnded) await once(ok.child.stdout!, "end");
    expect(ok.lines.join("\n")).toContain("configuration OK (embedded default)");
    expect(ok.lines.filter(isListening)).toHaveLength(0);

    const dir = mkdtempSync(join(tmpdir(), "sluice-main-"));
    dirs.push(dir);
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "providers: {}\nmodels:\n  m:\n    deployments: [{ provider: ghost, model: x }]\n");
    const bad = run(["--check", "--config", file]);
    expect(await bad.exited).toEqual({ code: 2, signal: null });
    expect(bad.stderr()).toContain("models.m.deployments.0.provider");
  });

  it("sluice.example.yaml (every provider kind) passes --check with its variables set", async () => {
    const env = { OPENAI_API_KEY: "x", ANTHROPIC_API_KEY: "y", AZURE_OPENAI_API_KEY: "z", DEEPSEEK_API_KEY: "w" };
    const check = run(["--check", "--config", join(repoRoot, "sluice.example.yaml")], env);
    expect(await check.exited, check.stderr()).toEqual({ code: 0, signal: null });
    if (!check.child.stdout!.readableEnded) await once(check.child.stdout!, "end");
    expect(check.lines.join("\n")).toMatch(/configuration OK: .*sluice\.example\.yaml — \d+ models, 6 providers/);
  });

  it("an address already in use: a sentence naming it and --listen, no stack trace, exit 1", async () => {
    const first = run(["--listen", "127.0.0.1:0"]);
    const { url } = JSON.parse(await first.waitForLine(isListening)) as { url: string };
    const address = url.replace("http://", "");
    const second = run(["--listen", address]);
    expect(await second.exited).toEqual({ code: 1, signal: null });
    expect(second.stderr()).toContain(`cannot listen on ${address}: the address is already in use`);
    expect(second.stderr()).toContain("--listen");
    expect(second.stderr()).not.toContain("    at ");
    first.child.kill("SIGTERM");
    expect(await first.exited).toEqual({ code: 0, signal: null });
  });

  it("a second signal during drain exits at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-main-"));
    dirs.push(dir);
    const file = join(dir, "slow.yaml");
    writeFileSync(
      file,
      [
        "server: { drainTimeoutMs: 60000 }",
        "providers: { slow: { type: demo, wordDelayMs: 60000 } }",
        "models: { demo: { deployments: [{ provider: slow, model: s }] } }",
      ].join("\n"),
    );
    const sluice = run(["--config", file], { SLUICE_LISTEN: "127.0.0.1:0" });
    const { url } = JSON.parse(await sluice.waitForLine(isListening)) as { url: string };
    const client = createClient(ChatService, connectJsonTransport(url).transport);
    const stream = client
      .streamComplete({
        model: "demo",
        messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hold" } }] }],
      })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.event.case).toBe("start");

    sluice.child.kill("SIGTERM");
    await sluice.waitForLine((line) => line.includes('"msg":"sluice draining"'));
    sluice.child.kill("SIGTERM");
    expect(await sluice.exited).toEqual({ code: 143, signal: null });
    await stream.return?.().catch(() => {});
  });
});
