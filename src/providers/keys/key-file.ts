import * as nodeFs from "node:fs";
import { basename, dirname } from "node:path";

/** What a stat tells about a file: enough to notice it was rewritten or swapped. */
export interface KeyFileStat {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

/** The file system calls a key file needs: node's, or a test's fake. */
export interface KeyFileSystem {
  readFileSync(path: string, encoding: "utf8"): string;
  statSync(path: string): KeyFileStat;
  readFile(path: string, encoding: "utf8"): Promise<string>;
  /** Follows symlinks (a Kubernetes mount's file is one). */
  stat(path: string): Promise<KeyFileStat>;
  /** Node's `fs.watch` on a directory: `listener` gets the changed entry's name (or null). */
  watch(directory: string, listener: (event: string, filename: string | null) => void): KeyFileWatcher;
}

export interface KeyFileWatcher {
  on(event: "error", listener: (err: Error) => void): unknown;
  close(): void;
  unref(): unknown;
}

export const nodeKeyFileSystem: KeyFileSystem = {
  readFileSync: (path, encoding) => nodeFs.readFileSync(path, encoding),
  statSync: (path) => nodeFs.statSync(path),
  readFile: (path, encoding) => nodeFs.promises.readFile(path, encoding),
  stat: (path) => nodeFs.promises.stat(path),
  watch: (directory, listener) => nodeFs.watch(directory, { persistent: false }, listener),
};

/** The keys a file holds, or why it holds none usable. Never echoes the file's content. */
export type KeyFileContent = { readonly keys: readonly string[] } | { readonly problem: string };

const visibleAscii = /^[\x21-\x7e]+$/;

/**
 * One key a line; blank lines and lines starting with `#` are skipped, each line trimmed
 * (a Kubernetes secret usually ends with a newline). A line that cannot be a header value
 * makes the whole file unusable rather than silently dropping a key.
 */
export function parseKeyFile(text: string): KeyFileContent {
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!visibleAscii.test(line)) return { problem: `line ${i + 1} is not a key (visible ASCII characters without spaces)` };
    keys.push(line);
  }
  return keys.length === 0 ? { problem: "holds no key" } : { keys };
}

/** The key file as read at startup, and its stat from just before the read (what the watcher compares with). */
export interface KeyFileRead {
  readonly content: KeyFileContent;
  readonly signature: string | undefined;
}

/** Reads and parses a key file once (at startup); a read failure is a problem naming its code, never the content. */
export function readKeyFileSync(path: string, fs: KeyFileSystem): KeyFileRead {
  let signature: string | undefined;
  try {
    signature = signatureOf(fs.statSync(path));
  } catch {
    signature = undefined;
  }
  try {
    return { content: parseKeyFile(fs.readFileSync(path, "utf8")), signature };
  } catch (err) {
    return { content: { problem: `cannot be read (${errnoCode(err)})` }, signature };
  }
}

function signatureOf(stat: KeyFileStat): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}

async function currentSignature(fs: KeyFileSystem, path: string): Promise<string | undefined> {
  try {
    return signatureOf(await fs.stat(path));
  } catch {
    return undefined;
  }
}

export interface KeyFileWatchOptions {
  readonly path: string;
  readonly fs: KeyFileSystem;
  /** The stat of the content the caller already holds (`readKeyFileSync`): a different one is read. */
  readonly signature: string | undefined;
  /** The file was read and holds keys (maybe the same ones: the caller compares). */
  readonly onKeys: (keys: readonly string[]) => void;
  /** The file changed into something unusable; the caller keeps its keys. */
  readonly onProblem: (problem: string) => void;
  /** The directory cannot be watched: only the timer notices changes. */
  readonly onWatchFailed?: (reason: string) => void;
  /** Interval of the stat check that backs up the watcher. */
  readonly pollMs: number;
  /** Quiet time after a change event before reading, so a write in several steps is read once, whole. */
  readonly settleMs: number;
}

export interface KeyFileWatch {
  /** Re-reads the file now (also what a change event and a changed stat do). */
  check(): Promise<void>;
  close(): void;
}

/**
 * Watches a key file for rewrites. The directory is watched, not the file: Kubernetes
 * updates a secret mount by swapping the `..data` symlink, which a watch on the old file
 * never reports, and editors and atomic writers replace the file by a rename. A stat check
 * on a timer backs the watcher up (a file behind a symlink elsewhere, file systems where
 * `fs.watch` says nothing, a watcher that failed). Neither keeps the process alive.
 */
export function watchKeyFile(options: KeyFileWatchOptions): KeyFileWatch {
  const { path, fs } = options;
  const name = basename(path);
  let closed = false;
  let reading: Promise<void> | undefined;
  let again = false;
  let seen = options.signature;
  let settle: NodeJS.Timeout | undefined;

  async function readOnce(): Promise<void> {
    // Stat before reading: a change after the stat shows as a new stat at the next poll.
    const signature = await currentSignature(fs, path);
    let content: KeyFileContent;
    try {
      content = parseKeyFile(await fs.readFile(path, "utf8"));
    } catch (err) {
      content = { problem: `cannot be read (${errnoCode(err)})` };
    }
    if (closed) return;
    seen = signature;
    if ("keys" in content) options.onKeys(content.keys);
    else options.onProblem(content.problem);
  }

  /** One read at a time; a change during a read is read again after it. */
  function check(): Promise<void> {
    if (closed) return Promise.resolve();
    if (reading !== undefined) {
      again = true;
      return reading;
    }
    reading = (async () => {
      try {
        do {
          again = false;
          await readOnce();
        } while (again && !closed);
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  }

  function changed(): void {
    if (closed) return;
    if (settle !== undefined) clearTimeout(settle);
    settle = setTimeout(() => {
      settle = undefined;
      void check();
    }, options.settleMs);
    settle.unref();
  }

  async function poll(): Promise<void> {
    if (closed || reading !== undefined) return;
    if ((await currentSignature(fs, path)) !== seen) void check();
  }

  let watcher: KeyFileWatcher | undefined;
  try {
    watcher = fs.watch(dirname(path), (_event, filename) => {
      // The file itself, or Kubernetes' `..data` / `..data_tmp` / `..2024_…` entries.
      if (filename === null || filename === name || filename.startsWith("..")) changed();
    });
    watcher.on("error", (err) => {
      watcher?.close();
      watcher = undefined;
      options.onWatchFailed?.(errnoCode(err));
    });
    watcher.unref();
  } catch (err) {
    watcher = undefined;
    options.onWatchFailed?.(errnoCode(err));
  }
  const timer = setInterval(() => void poll(), options.pollMs);
  timer.unref();

  return {
    check,
    close() {
      if (closed) return;
      closed = true;
      watcher?.close();
      clearInterval(timer);
      if (settle !== undefined) clearTimeout(settle);
    },
  };
}

function errnoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "error";
}
