import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitUntil } from "../../test/helpers/wait-until.js";
import { type ConfigReloader, createConfigReloader, keepRestartSettings } from "./config-reloader.js";
import { parseConfig } from "./load-config.js";
import type { SluiceConfig } from "./schema.js";

const doc = (delay: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    providers: { p: { type: "demo", wordDelayMs: delay } },
    models: { m: { deployments: [{ provider: "p", model: "x" }] } },
    ...extra,
  });

describe("keepRestartSettings", () => {
  it("keeps the running restart-only settings and names each change", () => {
    const running = parseConfig(JSON.parse(doc(0)), {});
    const next = parseConfig(JSON.parse(doc(1, { listen: "0.0.0.0:9000", server: { maxConcurrentCalls: 7 } })), {});
    const kept = keepRestartSettings(running, next);
    expect(kept.changed).toEqual(["listen", "server.maxConcurrentCalls"]);
    expect(kept.config.listen).toBe(running.listen);
    expect(kept.config.server).toBe(running.server);
    expect(kept.config.providers).toBe(next.providers);
  });
});

describe("createConfigReloader", () => {
  let dir: string;
  let file: string;
  let reloader: ConfigReloader | undefined;
  let applied: SluiceConfig[];
  let results: string[];
  let lines: { level: string; fields: object; message: string }[];
  let running: SluiceConfig;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-reload-"));
    file = join(dir, "sluice.yaml");
    await writeFile(file, doc(0));
    running = parseConfig(JSON.parse(doc(0)), {});
    applied = [];
    results = [];
    lines = [];
    const log = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
    reloader = createConfigReloader({
      file,
      env: {},
      logger: { info: log("info"), warn: log("warn"), error: log("error") },
      running: () => running,
      apply(config) {
        if (config.providers["p"]?.type === "demo" && config.providers["p"].wordDelayMs === 99)
          throw new Error("refused by apply");
        applied.push(config);
        running = config;
      },
      onResult: (result) => results.push(result),
      debounceMs: 20,
      pollMs: 50,
    });
  });

  afterEach(async () => {
    reloader?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const delayOf = (config: SluiceConfig | undefined) =>
    (config?.providers["p"] as { wordDelayMs: number } | undefined)?.wordDelayMs;

  it("applies a file rewritten in place and one renamed over it (as editors save)", async () => {
    await writeFile(file, doc(1));
    await waitUntil(() => delayOf(applied.at(-1)) === 1, "the in-place write applied");
    await writeFile(`${file}.swp`, doc(2));
    await rename(`${file}.swp`, file);
    await waitUntil(() => delayOf(applied.at(-1)) === 2, "the renamed file applied");
    expect(results.every((result) => result === "applied")).toBe(true);
  });

  it("rejects an invalid file or one apply refuses, logging the file and the problem", async () => {
    await writeFile(file, "providers: [");
    await waitUntil(() => results.includes("rejected"), "rejected");
    expect(lines.find((line) => line.level === "error")).toMatchObject({
      fields: { file },
      message: "configuration reload rejected: the running configuration keeps serving",
    });
    await writeFile(file, doc(99));
    await waitUntil(() => results.filter((result) => result === "rejected").length === 2, "refused by apply");
    expect(applied).toEqual([]);
    expect((lines.at(-1)!.fields as { err: string }).err).toBe("refused by apply");
  });

  it("reloads on request even when the text is unchanged; reloads do not overlap", async () => {
    const all = await Promise.all([reloader!.reload(), reloader!.reload(), reloader!.reload()]);
    expect(all).toEqual(["applied", "applied", "applied"]);
    // Asked before the first began: one reload serves all three.
    expect(applied.length).toBe(1);
    // SIGHUP reloads even a configuration equal to the running one.
    await writeFile(file, `${doc(0)}\n\n`);
    expect(await reloader!.reload()).toBe("applied");
    expect(applied.length).toBe(2);
  });

  it("warns about a setting that needs a restart and applies the rest", async () => {
    await writeFile(file, doc(3, { log: { level: "debug" } }));
    await waitUntil(() => applied.length === 1, "applied");
    expect(applied[0]!.log.level).toBe("info");
    expect(lines.find((line) => line.level === "warn")).toMatchObject({ fields: { key: "log.level" } });
  });
});
