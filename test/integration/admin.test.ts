import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCapturedLogger } from "../helpers/captured-logger.js";
import { familyNames } from "../helpers/metrics-exposition.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

// The admin listener (admin.listen): metrics with expose: admin, health with details, CPU
// profiles and heap snapshots, over real HTTP; and src/main.ts starting it.

const demo = {
  providers: { demo: { type: "demo" } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
};

const captured = createCapturedLogger("info");
let gateway: StartedSluice;
let admin: string;

beforeAll(async () => {
  gateway = await startSluice(
    { ...demo, admin: { listen: "127.0.0.1:0" }, telemetry: { metrics: { expose: "admin" } } },
    { logger: captured.logger },
  );
  admin = gateway.admin!.url;
});
afterAll(async () => {
  await gateway?.close();
});

const profilesStarted = (): number => captured.withMessage("admin: recording a CPU profile").length;

interface CpuProfile {
  readonly nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: number[];
  readonly timeDeltas: number[];
}

describe("the admin listener", () => {
  it("serves /metrics with expose: admin, and the serving port then does not", async () => {
    const response = await fetch(`${admin}/metrics`);
    expect(response.status).toBe(200);
    expect(familyNames(await response.text())).toContain("sluice_rpc_requests_total");
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(404);
  });

  it("/healthz reports breaker states and in-flight counts, which the serving port keeps to itself by default", async () => {
    const response = await fetch(`${admin}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: "SERVING",
      breakers: {},
      inFlight: {},
      state: { status: "ok", backend: "memory" },
    });
    expect(await (await fetch(`${gateway.url}/healthz`)).json()).toEqual({ status: "SERVING" });
  });

  it("answers 404 for anything else, 405 for a profile not asked for with GET, and no debug endpoint on the serving port", async () => {
    expect((await fetch(`${admin}/`)).status).toBe(404);
    expect((await fetch(`${admin}/debug/pprof/`)).status).toBe(404);
    const post = await fetch(`${admin}/debug/pprof/profile?seconds=1`, { method: "POST" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET"]);
    expect((await fetch(`${gateway.url}/debug/pprof/heap`)).status).toBe(404);
    expect((await fetch(`${gateway.url}/debug/pprof/profile?seconds=1`)).status).toBe(404);
  });

  it.each(["abc", "0", "61", "1.5", "", "-1", "1e1"])(
    "seconds=%s is refused with 400 and says what is allowed",
    async (seconds) => {
      const response = await fetch(`${admin}/debug/pprof/profile?seconds=${seconds}`);
      expect(response.status).toBe(400);
      expect(await response.text()).toBe(`seconds must be a whole number from 1 to 60, got "${seconds}"\n`);
    },
  );

  it("records a CPU profile of the requested length, loadable as a .cpuprofile", async () => {
    const response = await fetch(`${admin}/debug/pprof/profile?seconds=1`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("content-disposition")).toMatch(/^attachment; filename="sluice-[0-9TZ-]+\.cpuprofile"$/);
    const profile = (await response.json()) as CpuProfile;
    // What DevTools reads: a call tree, samples with their time deltas, start and end in µs.
    expect(profile.nodes.length).toBeGreaterThan(0);
    expect(profile.nodes[0]!.callFrame.functionName).toBe("(root)");
    expect(profile.samples.length).toBe(profile.timeDeltas.length);
    expect(profile.endTime - profile.startTime).toBeGreaterThanOrEqual(990_000);
    expect(profile.endTime - profile.startTime).toBeLessThan(10_000_000);
  });

  it("records one profile at a time: 409 while one runs", async () => {
    const before = profilesStarted();
    const first = fetch(`${admin}/debug/pprof/profile?seconds=1`);
    await waitUntil(() => profilesStarted() > before, "the first profile started");
    const second = await fetch(`${admin}/debug/pprof/profile?seconds=1`);
    expect(second.status).toBe(409);
    expect(await second.text()).toMatch(/already being recorded/);
    expect((await first).status).toBe(200);
  });

  it("stops a profile whose requester left: the next one does not wait a minute", async () => {
    const before = profilesStarted();
    const leaving = new AbortController();
    const abandoned = fetch(`${admin}/debug/pprof/profile?seconds=60`, { signal: leaving.signal }).catch(() => "aborted");
    await waitUntil(() => profilesStarted() > before, "the long profile started");
    const abandonedBefore = captured.withMessage("admin: CPU profile abandoned (requester left or listener closing)").length;
    leaving.abort();
    expect(await abandoned).toBe("aborted");
    await waitUntil(
      () => captured.withMessage("admin: CPU profile abandoned (requester left or listener closing)").length > abandonedBefore,
      "the server stopped the abandoned profile",
    );
    const next = await fetch(`${admin}/debug/pprof/profile?seconds=1`);
    expect(next.status).toBe(200);
  });

  it("streams a heap snapshot (.heapsnapshot) and leaves no file behind", async () => {
    const leftovers = () => readdirSync(tmpdir()).filter((name) => name.startsWith("sluice-heap-"));
    const before = leftovers();
    const response = await fetch(`${admin}/debug/pprof/heap`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-disposition")).toMatch(/^attachment; filename="sluice-[0-9TZ-]+\.heapsnapshot"$/);
    const body = Buffer.from(await response.arrayBuffer());
    expect(body.length).toBe(Number(response.headers.get("content-length")));
    // The format DevTools loads: one JSON object, its snapshot metadata first.
    const snapshot = JSON.parse(body.toString("utf8")) as { snapshot: { meta: { node_fields: string[] }; node_count: number } };
    expect(snapshot.snapshot.meta.node_fields).toContain("self_size");
    expect(snapshot.snapshot.node_count).toBeGreaterThan(1000);
    expect(leftovers()).toEqual(before);
  });
});

describe("closing the admin listener", () => {
  it("ends a profile in progress at once", async () => {
    const own = createCapturedLogger("info");
    const other = await startSluice({ ...demo, admin: { listen: "127.0.0.1:0" } }, { logger: own.logger });
    const running = fetch(`${other.admin!.url}/debug/pprof/profile?seconds=60`).then(
      (response) => response.status,
      () => "closed",
    );
    await waitUntil(() => own.withMessage("admin: recording a CPU profile").length === 1, "the profile started");
    const started = performance.now();
    await other.admin!.server.close();
    expect(await running).toBe("closed");
    expect(performance.now() - started).toBeLessThan(5_000);
    await other.close();
  });
});

const demoConfigLines = [
  "providers: { demo: { type: demo } }",
  "models: { demo: { deployments: [ { provider: demo, model: sluice-demo-1 } ] } }",
];

describe("sluice (src/main.ts) with admin.listen", () => {
  const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `src/main.ts` as `npm run dev` does (tsx) with `config` as its file; stdout's JSON lines collected. */
  function runMain(config: string[]) {
    dir = mkdtempSync(join(tmpdir(), "sluice-admin-"));
    const configFile = join(dir, "sluice.yaml");
    writeFileSync(configFile, `${config.join("\n")}\n`);
    const { SLUICE_CONFIG: _c, SLUICE_LISTEN: _l, ...inherited } = process.env;
    const started = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--config", configFile], {
      cwd: repoRoot,
      env: inherited,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    const lines: Array<{ msg?: string; url?: string }> = [];
    const output = { stderr: "" };
    started.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output.stderr += chunk));
    let partial = "";
    started.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const line of parts) lines.push(JSON.parse(line) as { msg?: string; url?: string });
    });
    return { child: started, lines, output, exited: once(started, "exit") as Promise<[number | null]> };
  }

  it("refuses an admin.listen that is not a port or host:port at startup (exit 2)", async () => {
    const { exited, output } = runMain(["admin: { listen: localhost }", ...demoConfigLines]);
    const [code] = await exited;
    expect(code).toBe(2);
    expect(output.stderr).toMatch(/^sluice: admin\.listen: invalid listen address "localhost"/);
  });

  it("starts the admin listener after the serving one, logs its URL, and stops it on SIGTERM", async () => {
    const { child, lines, output, exited } = runMain([
      "listen: 127.0.0.1:0",
      "admin: { listen: 127.0.0.1:0 }",
      "telemetry: { metrics: { expose: admin } }",
      ...demoConfigLines,
    ]);
    await waitUntil(
      () => lines.some((line) => line.msg === "sluice admin listening") || child.exitCode !== null,
      "admin listening",
      30_000,
    );
    const messages = lines.map((line) => line.msg);
    expect(messages.indexOf("sluice listening")).toBeLessThan(messages.indexOf("sluice admin listening"));
    const serving = lines.find((line) => line.msg === "sluice listening")!.url!;
    const adminUrl = lines.find((line) => line.msg === "sluice admin listening")!.url!;
    expect(adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(adminUrl).not.toBe(serving);

    expect((await fetch(`${adminUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${serving}/metrics`)).status).toBe(404);
    expect(await (await fetch(`${adminUrl}/healthz`)).json()).toMatchObject({ status: "SERVING", breakers: {} });

    child.kill("SIGTERM");
    const [code] = await exited;
    expect([code, output.stderr]).toEqual([0, ""]);
    await expect(fetch(`${adminUrl}/healthz`)).rejects.toThrow();
  });
});
