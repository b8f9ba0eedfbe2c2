import { closeSync, openSync, writeSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

/**
 * Writes a V8 heap snapshot (`.heapsnapshot`, Chrome DevTools → Memory → Load) into `dir`
 * through node:inspector's in-process Session and returns its path. Chunk by chunk to the
 * file as V8 produces them: a snapshot is about the size of the heap, and holding it in
 * memory — or in a socket's write buffer, since V8 emits every chunk before the event loop
 * runs again — could double the gateway's memory at the moment it is being investigated.
 *
 * The process stops while V8 walks the heap (about a second per few hundred MB): every call
 * in progress waits that long. That is what an operator asks for with this.
 */
export async function writeHeapSnapshot(dir: string): Promise<string> {
  const file = join(dir, "sluice.heapsnapshot");
  const fd = openSync(file, "w");
  const session = new Session();
  session.connect();
  try {
    session.on("HeapProfiler.addHeapSnapshotChunk", (message) => {
      writeSync(fd, message.params.chunk);
    });
    await session.post("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  } finally {
    session.disconnect();
    closeSync(fd);
  }
  return file;
}
