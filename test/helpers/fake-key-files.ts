import type { KeyFileStat, KeyFileSystem, KeyFileWatcher } from "../../src/providers/keys/key-file.js";

/** An in-memory file system for key file tests: files, their stats, and a directory watcher the test fires. */
export interface FakeKeyFiles {
  readonly fs: KeyFileSystem;
  /** Writes a file (a new inode, as an atomic rewrite gives), without telling any watcher. */
  write(path: string, text: string): void;
  /** Makes reads of `path` fail with `code` (EACCES…); the file keeps its stat. */
  breakReads(path: string, code: string): void;
  remove(path: string): void;
  /** Tells every watcher that `filename` in its directory changed. */
  emit(filename: string | null): void;
  /** Fails every watcher with an error (a removed directory…). */
  failWatchers(code: string): void;
  /** Reads so far (sync and async), by path. */
  readonly reads: string[];
  /** Directories watched, and whether each watcher was closed. */
  readonly watchers: Array<{ readonly directory: string; closed: boolean }>;
  /** When set, `watch()` throws with this code (inotify limits, a missing directory…). */
  watchThrows: string | undefined;
}

function errno(code: string): Error {
  return Object.assign(new Error(`${code}: fake`), { code });
}

export function createFakeKeyFiles(): FakeKeyFiles {
  const files = new Map<string, { text: string; stat: KeyFileStat; readError?: string }>();
  const listeners: Array<{ listener: (event: string, filename: string | null) => void; onError?: (err: Error) => void }> = [];
  const reads: string[] = [];
  const watchers: Array<{ directory: string; closed: boolean }> = [];
  let inode = 100;
  let clock = 1_700_000_000_000;

  function entry(path: string) {
    const file = files.get(path);
    if (file === undefined) throw errno("ENOENT");
    return file;
  }
  function read(path: string): string {
    reads.push(path);
    const file = entry(path);
    if (file.readError !== undefined) throw errno(file.readError);
    return file.text;
  }

  const fake: FakeKeyFiles = {
    fs: {
      readFileSync: (path) => read(path),
      statSync: (path) => entry(path).stat,
      readFile: async (path) => read(path),
      stat: async (path) => entry(path).stat,
      watch(directory, listener): KeyFileWatcher {
        if (fake.watchThrows !== undefined) throw errno(fake.watchThrows);
        const record = { directory, closed: false };
        watchers.push(record);
        const registration: (typeof listeners)[number] = { listener };
        listeners.push(registration);
        return {
          on(_event, onError) {
            registration.onError = onError;
            return this;
          },
          close() {
            record.closed = true;
            listeners.splice(listeners.indexOf(registration), 1);
          },
          unref() {
            return this;
          },
        };
      },
    },
    write(path, text) {
      clock += 1_000;
      files.set(path, { text, stat: { ino: inode++, size: Buffer.byteLength(text), mtimeMs: clock, ctimeMs: clock } });
    },
    breakReads(path, code) {
      entry(path).readError = code;
    },
    remove(path) {
      files.delete(path);
    },
    emit(filename) {
      for (const { listener } of [...listeners]) listener("rename", filename);
    },
    failWatchers(code) {
      for (const { onError } of [...listeners]) onError?.(errno(code));
    },
    reads,
    watchers,
    watchThrows: undefined,
  };
  return fake;
}
