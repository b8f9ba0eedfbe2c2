import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../../config/load-config.js";
import { providerSchema, type ProviderKeySettings } from "../../config/provider-schema.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { failures } from "../../errors/failure-table.js";
import { createLogger } from "../../telemetry/logger.js";
import { createFakeKeyFiles, type FakeKeyFiles } from "../../../test/helpers/fake-key-files.js";
import { keyFingerprint } from "./key-pool.js";
import { createProviderKeys, type ProviderKeyDeps, type ProviderKeys } from "./provider-keys.js";

const path = "/etc/sluice/keys/openai";
const settleMs = 100;
const secrets = ["sk-planted-first-0a1b2c3d", "sk-planted-second-4e5f6a7b", "sk-planted-third-8c9d0e1f"];

/** The key settings as the schema parses them (defaults applied). */
function settings(fields: Record<string, unknown>): ProviderKeySettings {
  const parsed = providerSchema.parse({ type: "openai", ...fields });
  if (parsed.type !== "openai") throw new Error("unreachable");
  return parsed;
}

/** Log lines in memory, and a promise for the next line with a given message. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const texts: string[] = [];
  const waiters: Array<{ msg: string; resolve: () => void }> = [];
  const logger = createLogger({
    level: "debug",
    destination: {
      write(line: string) {
        texts.push(line);
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        for (const waiter of waiters.filter((w) => w.msg === parsed["msg"])) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      },
    },
  });
  return {
    logger,
    lines,
    texts,
    messages: () => lines.map((line) => line["msg"]),
    next: (msg: string) => new Promise<void>((resolve) => waiters.push({ msg, resolve })),
  };
}

const refused = () => new UpstreamError({ failure: failures.upstreamAuth, provider: "oai", message: "refused", status: 401 });
const rateLimited = (retryAfterMs: number) =>
  new UpstreamError({ failure: failures.rateLimited, provider: "oai", message: "slow down", status: 429, retryAfterMs });

describe("createProviderKeys from literal settings", () => {
  it("no key: one value built without a key (a local server)", () => {
    const keys = createProviderKeys("local", settings({}), (key) => ({ key }));
    expect(keys.size).toBe(1);
    expect(keys.pick().value).toEqual({ key: undefined });
  });

  it("apiKey: that one key, as ever", () => {
    const keys = createProviderKeys("oai", settings({ apiKey: secrets[0] }), (key) => key);
    expect(keys.size).toBe(1);
    expect(keys.pick().value).toBe(secrets[0]);
  });

  it("apiKeys: failover by default, round-robin when asked", () => {
    const failover = createProviderKeys("oai", settings({ apiKeys: secrets }), (key) => key);
    expect([failover.pick().value, failover.pick().value]).toEqual([secrets[0], secrets[0]]);
    const rotating = createProviderKeys("oai", settings({ apiKeys: secrets, keySelection: "round-robin" }), (key) => key);
    expect([rotating.pick().value, rotating.pick().value, rotating.pick().value]).toEqual(secrets);
  });

  it("a refused key is logged once as benched, by fingerprint; a 429 only at debug", () => {
    const log = capture();
    const keys = createProviderKeys("oai", settings({ apiKeys: secrets }), (key) => key, { logger: log.logger });
    expect(keys.failed(keys.pick(), refused())).toBe(true);
    expect(keys.failed(keys.pick(), rateLimited(1_000))).toBe(true);
    expect(keys.pick().value).toBe(secrets[2]);
    expect(log.lines).toMatchObject([
      { level: 40, provider: "oai", keyFingerprint: keyFingerprint(secrets[0]!), benchMs: 60_000 },
      { level: 20, provider: "oai", keyFingerprint: keyFingerprint(secrets[1]!), benchMs: 1_000 },
    ]);
    for (const secret of secrets) expect(log.texts.join("\n")).not.toContain(secret);
  });
});

describe("createProviderKeys from a key file", () => {
  let files: FakeKeyFiles;
  let log: ReturnType<typeof capture>;
  let keys: ProviderKeys<string> | undefined;
  let now: number;

  beforeEach(() => {
    vi.useFakeTimers();
    files = createFakeKeyFiles();
    log = capture();
    now = 0;
  });
  afterEach(() => {
    keys?.close();
    keys = undefined;
    vi.useRealTimers();
  });

  function open(extra: Record<string, unknown> = {}, deps: Partial<ProviderKeyDeps> = {}): ProviderKeys<string> {
    keys = createProviderKeys("oai", settings({ apiKeyFile: path, ...extra }), (key) => `Bearer ${key}`, {
      logger: log.logger,
      fs: files.fs,
      now: () => now,
      settleMs,
      ...deps,
    });
    return keys;
  }

  /** Rewrites the file, announces it, and resolves at the log line the reload writes. */
  async function rewrite(text: string, msg = "provider keys reloaded"): Promise<void> {
    files.write(path, text);
    const logged = log.next(msg);
    files.emit("openai");
    vi.advanceTimersByTime(settleMs);
    await logged;
  }

  it("reads the file at startup: its keys, in order", () => {
    files.write(path, `# production\n${secrets[0]}\n${secrets[1]}\n`);
    const pool = open();
    expect(pool.size).toBe(2);
    expect(pool.pick().value).toBe(`Bearer ${secrets[0]}`);
  });

  it("a missing, unreadable or keyless file stops startup with a ConfigError naming the provider and path only", () => {
    expect(() => open()).toThrow(new ConfigError(`providers.oai.apiKeyFile: ${path} cannot be read (ENOENT)`));
    files.write(path, `${secrets[0]}\n`);
    files.breakReads(path, "EACCES");
    expect(() => open()).toThrow(new ConfigError(`providers.oai.apiKeyFile: ${path} cannot be read (EACCES)`));
    files.write(path, "# nothing yet\n");
    expect(() => open()).toThrow(new ConfigError(`providers.oai.apiKeyFile: ${path} holds no key`));
    files.write(path, `${secrets[0]} trailing-secret-part\n`);
    let message = "";
    try {
      open();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(`providers.oai.apiKeyFile: ${path} line 1 is not a key (visible ASCII characters without spaces)`);
    expect(message).not.toContain("secret");
  });

  it("a rewritten file is picked up without a restart: the next pick uses the new key, the reload is logged with a count", async () => {
    files.write(path, `${secrets[0]}\n`);
    const pool = open();
    await rewrite(`${secrets[1]}\n${secrets[2]}\n`);
    expect(pool.size).toBe(2);
    expect(pool.pick().value).toBe(`Bearer ${secrets[1]}`);
    expect(log.lines).toMatchObject([{ level: 30, provider: "oai", keyCount: 2, msg: "provider keys reloaded" }]);
    for (const secret of secrets) expect(log.texts.join("\n")).not.toContain(secret);
  });

  it("the same keys rewritten: nothing to reload, nothing logged", async () => {
    files.write(path, `${secrets[0]}\n`);
    const pool = open();
    const before = pool.pick();
    // A comment added, then a real change: only the second reloads.
    await rewrite(`# same key\n${secrets[0]}\n`, "provider key file re-read: same keys");
    expect(pool.pick()).toBe(before);
    await rewrite(`${secrets[1]}\n`);
    expect(log.messages()).toEqual(["provider key file re-read: same keys", "provider keys reloaded"]);
    expect(log.lines[0]).toMatchObject({ level: 20, provider: "oai", path, keyCount: 1 });
    expect(before.value).toBe(`Bearer ${secrets[0]}`);
  });

  it("a rewrite into an empty or unreadable file keeps the previous keys and warns once, naming the path", async () => {
    files.write(path, `${secrets[0]}\n`);
    const pool = open();
    const unusable = "provider key file unusable: the previous keys stay in use";
    await rewrite("", unusable);
    await rewrite("\n# still nothing\n", "provider key file still unusable");
    expect(pool.pick().value).toBe(`Bearer ${secrets[0]}`);
    // Good again, then bad again: said again.
    await rewrite(`${secrets[1]}\n`);
    await rewrite("", unusable);
    expect(pool.pick().value).toBe(`Bearer ${secrets[1]}`);
    expect(log.messages()).toEqual([unusable, "provider key file still unusable", "provider keys reloaded", unusable]);
    expect(log.lines[0]).toMatchObject({ level: 40, provider: "oai", path, problem: "holds no key" });
    for (const secret of secrets) expect(log.texts.join("\n")).not.toContain(secret);
  });

  it("a reload ends refusals (the file was fixed) but keeps rate-limit benches of keys still in it", async () => {
    files.write(path, `${secrets[0]}\n${secrets[1]}\n${secrets[2]}\n`);
    const pool = open();
    pool.failed(pool.pick(), refused());
    pool.failed(pool.pick(), rateLimited(10_000));
    expect(pool.pick().value).toBe(`Bearer ${secrets[2]}`);
    await rewrite(`${secrets[0]}\n${secrets[1]}\n`);
    expect(pool.pick().value).toBe(`Bearer ${secrets[0]}`);
    pool.failed(pool.pick(), refused());
    // secrets[1] is still rate-limited, secrets[0] refused again: the sooner back is the 429.
    expect(pool.pick().value).toBe(`Bearer ${secrets[1]}`);
  });

  it("close() stops watching the file", () => {
    files.write(path, `${secrets[0]}\n`);
    open().close();
    expect(files.watchers.every((watcher) => watcher.closed)).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a directory that cannot be watched is said once; the periodic check still reloads", async () => {
    files.write(path, `${secrets[0]}\n`);
    files.watchThrows = "ENOSPC";
    const pool = open({}, { pollMs: 1_000 });
    expect(log.lines).toMatchObject([{ level: 40, provider: "oai", path, reason: "ENOSPC", pollMs: 1_000 }]);
    files.write(path, `${secrets[1]}\n`);
    const reloaded = log.next("provider keys reloaded");
    vi.advanceTimersByTime(1_000);
    await reloaded;
    expect(pool.pick().value).toBe(`Bearer ${secrets[1]}`);
  });
});
