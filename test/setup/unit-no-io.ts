import { ChildProcess } from "node:child_process";
import * as childProcess from "node:child_process";
import { syncBuiltinESMExports } from "node:module";
import * as net from "node:net";

/**
 * Setup file of the `unit` project: a unit test that opens a socket, starts a server or runs
 * a child process fails at once, naming the tier it belongs in. (Servers of every kind —
 * http, https, http2, net — listen through net.Server; every client socket, undici's
 * included, connects through net.Socket; spawn, exec, execFile and fork go through
 * ChildProcess#spawn.)
 */
const marker = Symbol.for("sluice.unitNoIo");
const patched = globalThis as { [marker]?: true };

function refuse(what: string): never {
  throw new Error(`${what} in a unit test: tests that use sockets, servers or child processes belong in test/integration/`);
}

if (!patched[marker]) {
  patched[marker] = true;
  net.Server.prototype.listen = function listen() {
    refuse("a server listening");
  };
  net.Socket.prototype.connect = function connect() {
    refuse("a socket connecting");
  };
  // ChildProcess#spawn is public in node, missing from @types/node.
  (ChildProcess.prototype as unknown as { spawn: () => never }).spawn = function spawn() {
    refuse("a child process");
  };
  const cp = childProcess as unknown as { default: Record<string, unknown> };
  for (const name of ["spawnSync", "execSync", "execFileSync"]) {
    cp.default[name] = () => refuse("a child process");
  }
  syncBuiltinESMExports();
}
