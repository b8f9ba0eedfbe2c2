import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { apiKeyHash } from "../../src/identity/api-keys.js";
import { envOf, execFormOf, lastOf, readDockerfile } from "../helpers/dockerfile.js";

/**
 * The container's command line, run here as the image runs it (no Docker engine on this
 * machine): the final stage's ENTRYPOINT + CMD with its ENV, the image's /app being this
 * checkout (bin/sluice.mjs runs the dist/ that `npm test`'s build left, like the image's)
 * and /etc/sluice/sluice.yaml a file of the test's. Only loopback is ever bound: the
 * anonymous case is refused before any socket opens, and the served case adds `--listen
 * 127.0.0.1:0`, which wins over the image's SLUICE_LISTEN as a flag does in the container.
 */
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const finalStage = readDockerfile().at(-1) ?? [];
const workdir = lastOf(finalStage, "WORKDIR") ?? "/app";
const imageEnv = envOf(finalStage);
const dir = mkdtempSync(join(tmpdir(), "sluice-entrypoint-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** ENTRYPOINT + CMD (+ extra), with the image's paths mapped onto this checkout and the test's config. */
function imageCommand(config: string, extra: string[] = []): string[] {
  return [...execFormOf(finalStage, "ENTRYPOINT"), ...execFormOf(finalStage, "CMD"), ...extra].map((word) =>
    word === "/etc/sluice/sluice.yaml"
      ? config
      : word.startsWith(`${workdir}/`)
        ? join(repoRoot, word.slice(workdir.length + 1))
        : word,
  );
}

function runImage(config: string, extra: string[] = []) {
  const [command, ...args] = imageCommand(config, extra);
  expect(command).toBe("node");
  const { SLUICE_CONFIG: _c, SLUICE_LISTEN: _l, ...inherited } = process.env;
  const child = spawn(process.execPath, args, { env: { ...inherited, ...imageEnv }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return { child, stdout: () => stdout, stderr: () => stderr, exited: once(child, "exit") };
}

describe("the Dockerfile's entrypoint", () => {
  it("listens on every interface inside the container (SLUICE_LISTEN=0.0.0.0:8080)", () => {
    expect(imageEnv["SLUICE_LISTEN"]).toBe("0.0.0.0:8080");
  });

  it("refuses to start without tenants on 0.0.0.0, saying why (the safety rule), exit 2", async () => {
    const config = join(dir, "anonymous.yaml");
    writeFileSync(
      config,
      "providers: { demo: { type: demo } }\nmodels: { demo: { deployments: [{ provider: demo, model: m }] } }\n",
    );
    const run = runImage(config);
    const [code] = await run.exited;
    expect(code).toBe(2);
    expect(run.stderr()).toContain("listening on 0.0.0.0 with no authentication");
    // The first run may compile dist/ (bin/sluice.mjs builds when the sources are newer).
  }, 120_000);

  it("with a tenant, starts and serves (here on loopback by --listen)", async () => {
    const key = "sk-sluice-entrypoint-0123456789abcdef0123456789";
    const config = join(dir, "tenant.yaml");
    writeFileSync(
      config,
      "providers: { demo: { type: demo } }\nmodels: { demo: { deployments: [{ provider: demo, model: m }] } }\n" +
        `tenants: { ops: { apiKeys: [ { sha256: ${apiKeyHash(key)} } ], models: [ demo ] } }\n`,
    );
    const run = runImage(config, ["--listen", "127.0.0.1:0"]);
    try {
      let url: string | undefined;
      for (let i = 0; i < 400 && url === undefined; i++) {
        url = /"msg":"sluice listening"/.test(run.stdout()) ? /"url":"([^"]+)"/.exec(run.stdout())?.[1] : undefined;
        if (url === undefined) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(url, run.stderr()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const answer = await fetch(`${url}/sluice.v1.ChatService/Complete`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "hi" }] }] }),
      });
      expect(answer.status).toBe(200);
    } finally {
      run.child.kill("SIGTERM");
      const [code] = await run.exited;
      expect(code).toBe(0);
    }
  }, 60_000);
});
