import * as net from "node:net";
import { once } from "node:events";

/**
 * Sees every read the server makes on its accepted sockets (pass `onConnection` to the
 * listener). A test waits until the server has read N bytes of a connection before sending
 * more, so a preface split into pieces reaches the server as separate reads for certain —
 * no sleeps, no hoping TCP does not coalesce.
 */
export interface ReadSpy {
  readonly onConnection: (socket: net.Socket) => void;
  /** Resolves when the server socket whose peer port is `remotePort` has read at least `bytes`. */
  readAtLeast(remotePort: number, bytes: number): Promise<void>;
}

export function createReadSpy(): ReadSpy {
  interface Seen {
    total: number;
    waiters: Array<{ bytes: number; resolve: () => void }>;
  }
  const byPort = new Map<number, Seen>();
  const entry = (port: number): Seen => {
    let seen = byPort.get(port);
    if (seen === undefined) {
      seen = { total: 0, waiters: [] };
      byPort.set(port, seen);
    }
    return seen;
  };
  return {
    onConnection(socket) {
      const port = socket.remotePort!;
      const seen = entry(port);
      // Registered after the listener's own reader, so it never changes the socket's
      // flowing state; it only counts what the server read.
      socket.on("data", (chunk: Buffer) => {
        seen.total += chunk.length;
        seen.waiters = seen.waiters.filter((w) => {
          if (w.bytes > seen.total) return true;
          w.resolve();
          return false;
        });
      });
      socket.once("close", () => byPort.delete(port));
    },
    readAtLeast(remotePort, bytes) {
      const seen = entry(remotePort);
      if (seen.total >= bytes) return Promise.resolve();
      return new Promise((resolve) => seen.waiters.push({ bytes, resolve }));
    },
  };
}

export interface RechunkingProxy {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy that forwards a connection's first bytes to the target in the given
 * piece sizes, each piece sent only after the server has read the previous one; the rest
 * flows through unchanged. Any real client (http2.connect, grpc-js) can then be made to
 * deliver its preface split across reads.
 */
export async function startRechunkingProxy(options: {
  readonly target: { readonly host: string; readonly port: number };
  /** Sizes of the leading pieces, e.g. `[1, 1, 1, …]` or `[10, 14]`. */
  readonly pieces: readonly number[];
  readonly spy: ReadSpy;
}): Promise<RechunkingProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    const upstream = net.connect({ host: options.target.host, port: options.target.port, noDelay: true });
    sockets.add(upstream);
    upstream.once("close", () => sockets.delete(upstream));
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
    upstream.pipe(client);

    let pending = Buffer.alloc(0);
    let piece = 0;
    let sent = 0;
    let pumping = false;
    let clientEnded = false;
    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        if (upstream.connecting) await once(upstream, "connect");
        while (piece < options.pieces.length && pending.length >= options.pieces[piece]!) {
          const size = options.pieces[piece++]!;
          upstream.write(pending.subarray(0, size));
          pending = pending.subarray(size);
          sent += size;
          await options.spy.readAtLeast(upstream.localPort!, sent);
        }
        if (piece >= options.pieces.length) {
          if (pending.length > 0) upstream.write(pending);
          pending = Buffer.alloc(0);
          if (clientEnded) upstream.end();
        }
      } catch {
        client.destroy();
      } finally {
        pumping = false;
      }
      if (piece < options.pieces.length && pending.length >= options.pieces[piece]!) void pump();
      else if (piece >= options.pieces.length && pending.length > 0) void pump();
    };
    client.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      void pump();
    });
    client.once("end", () => {
      clientEnded = true;
      if (!pumping && piece >= options.pieces.length) upstream.end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
}
