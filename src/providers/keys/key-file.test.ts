import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createFakeKeyFiles, type FakeKeyFiles } from "../../../test/helpers/fake-key-files.js";
import { parseKeyFile, readKeyFileSync, watchKeyFile, type KeyFileWatch } from "./key-file.js";

const path = "/var/run/secrets/openai/keys";
const pollMs = 5_000;
const settleMs = 100;

describe("parseKeyFile", () => {
  it("one key a line; blank lines and # comments skipped; lines trimmed; CRLF too", () => {
    expect(parseKeyFile("# rotated 2026-01-02\nsk-one\n\n  sk-two  \r\n#sk-old\nsk-three\n")).toEqual({
      keys: ["sk-one", "sk-two", "sk-three"],
    });
  });

  it("a file without a key is a problem", () => {
    expect(parseKeyFile("")).toEqual({ problem: "holds no key" });
    expect(parseKeyFile("\n# only a comment\n  \n")).toEqual({ problem: "holds no key" });
  });

  it("a line that cannot be a header value makes the file unusable, named by its number, never quoted", () => {
    const result = parseKeyFile("sk-good\nsk-has space-secret\n");
    expect(result).toEqual({ problem: "line 2 is not a key (visible ASCII characters without spaces)" });
    expect(JSON.stringify(result)).not.toContain("secret");
  });
});

describe("readKeyFileSync", () => {
  it("an unreadable file is a problem naming the error code", () => {
    const files = createFakeKeyFiles();
    expect(readKeyFileSync(path, files.fs).content).toEqual({ problem: "cannot be read (ENOENT)" });
    files.write(path, "sk-secret-1\n");
    files.breakReads(path, "EACCES");
    expect(readKeyFileSync(path, files.fs).content).toEqual({ problem: "cannot be read (EACCES)" });
  });
});

describe("watchKeyFile", () => {
  let files: FakeKeyFiles;
  let watch: KeyFileWatch | undefined;
  let seen: Array<readonly string[] | string>;
  let waiters: Array<() => void>;
  let watchFailures: string[];

  beforeEach(() => {
    vi.useFakeTimers();
    files = createFakeKeyFiles();
    files.write(path, "sk-first\n");
    seen = [];
    waiters = [];
    watchFailures = [];
  });
  afterEach(() => {
    watch?.close();
    watch = undefined;
    vi.useRealTimers();
  });

  function start(): KeyFileWatch {
    const { signature } = readKeyFileSync(path, files.fs);
    files.reads.length = 0;
    watch = watchKeyFile({
      path,
      fs: files.fs,
      signature,
      pollMs,
      settleMs,
      onKeys: (keys) => report(keys),
      onProblem: (problem) => report(problem),
      onWatchFailed: (reason) => watchFailures.push(reason),
    });
    return watch;
  }
  function report(what: readonly string[] | string): void {
    seen.push(what);
    waiters.shift()?.();
  }
  /** Resolves at the next onKeys / onProblem. */
  const nextReport = () => new Promise<void>((resolve) => waiters.push(resolve));

  it("watches the file's directory, not the file (Kubernetes swaps a symlink beside it)", () => {
    start();
    expect(files.watchers).toEqual([{ directory: "/var/run/secrets/openai", closed: false }]);
  });

  it("a change event for the file: read once after the settle time, however many events came", async () => {
    start();
    files.write(path, "sk-second\nsk-third\n");
    files.emit("keys");
    vi.advanceTimersByTime(settleMs - 1);
    files.emit("keys");
    files.emit(null);
    vi.advanceTimersByTime(settleMs - 1);
    expect(files.reads).toEqual([]);
    const reported = nextReport();
    vi.advanceTimersByTime(1);
    await reported;
    expect(seen).toEqual([["sk-second", "sk-third"]]);
    expect(files.reads).toEqual([path]);
  });

  it("Kubernetes' ..data swap is a change; other files in the directory are not", async () => {
    start();
    files.emit("unrelated.log");
    files.emit("keys.swp-not-ours");
    expect(vi.getTimerCount()).toBe(1); // the poll only: no read scheduled
    files.write(path, "sk-swapped\n");
    files.emit("..data_tmp");
    const reported = nextReport();
    vi.advanceTimersByTime(settleMs);
    await reported;
    expect(seen).toEqual([["sk-swapped"]]);
  });

  it("a rewrite into something unusable is reported as a problem, never with the content", async () => {
    start();
    files.write(path, "\n\n");
    files.emit("keys");
    let reported = nextReport();
    vi.advanceTimersByTime(settleMs);
    await reported;
    files.breakReads(path, "EACCES");
    files.emit("keys");
    reported = nextReport();
    vi.advanceTimersByTime(settleMs);
    await reported;
    expect(seen).toEqual(["holds no key", "cannot be read (EACCES)"]);
  });

  it("the stat check notices a change no event announced, and reads only then", async () => {
    start();
    vi.advanceTimersByTime(pollMs * 3);
    files.write(path, "sk-polled\n");
    const reported = nextReport();
    vi.advanceTimersByTime(pollMs);
    await reported;
    expect(seen).toEqual([["sk-polled"]]);
    // The unchanged polls before it read nothing.
    expect(files.reads).toEqual([path]);
  });

  it("a directory that cannot be watched: said once, and the stat check still finds the change", async () => {
    files.watchThrows = "ENOSPC";
    start();
    expect(watchFailures).toEqual(["ENOSPC"]);
    files.write(path, "sk-polled\n");
    const reported = nextReport();
    vi.advanceTimersByTime(pollMs);
    await reported;
    expect(seen).toEqual([["sk-polled"]]);
  });

  it("a watcher that fails later is closed and reported; the stat check carries on", async () => {
    start();
    files.failWatchers("ENOENT");
    expect(watchFailures).toEqual(["ENOENT"]);
    expect(files.watchers[0]!.closed).toBe(true);
    files.write(path, "sk-polled\n");
    const reported = nextReport();
    vi.advanceTimersByTime(pollMs);
    await reported;
    expect(seen).toEqual([["sk-polled"]]);
  });

  it("close(): the watcher is closed, no timer is left, nothing more is read", async () => {
    start();
    files.write(path, "sk-late\n");
    files.emit("keys");
    watch!.close();
    expect(files.watchers[0]!.closed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await watch!.check();
    expect(files.reads).toEqual([]);
    expect(seen).toEqual([]);
  });

  it("a change during a read is read again after it", async () => {
    const w = start();
    files.write(path, "sk-one\n");
    const first = w.check();
    files.write(path, "sk-two\n");
    const again = w.check();
    expect(again).toBe(first);
    await first;
    expect(seen).toEqual([["sk-two"], ["sk-two"]]);
  });
});
