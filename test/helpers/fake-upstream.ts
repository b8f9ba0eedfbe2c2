import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** A request the fake upstream received, body parsed when it was JSON. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly bodyText: string;
  readonly body: unknown;
}

/**
 * What the fake answers one request with: a scripted wire-level response. Body chunks
 * are written one `write()` each, so a test controls exactly where the bytes are cut.
 */
export interface ScriptedResponse {
  status?: number;
  headers?: Record<string, string>;
  /** Written as given, one write per chunk; strings are UTF-8. */
  chunks?: Array<string | Uint8Array>;
  /** Wait before sending headers. */
  delayBeforeHeadersMs?: number;
  /** Wait between chunks. */
  delayBetweenChunksMs?: number;
  /** Destroy the socket before sending anything (connection reset). */
  resetBeforeHeaders?: boolean;
  /** Destroy the socket after this many chunks (a mid-body cut; no clean end). */
  resetAfterChunks?: number;
  /** Never end the response after the chunks (a stalled stream). */
  stallAfterChunks?: boolean;
  /** Wait after the last chunk before ending the response (the end arrives in its own packet). */
  delayBeforeEndMs?: number;
}

export type Responder = (request: RecordedRequest, index: number) => ScriptedResponse;

export interface FakeUpstream {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Requests whose client went away before the response finished. */
  readonly aborted: RecordedRequest[];
  /** Replaces the responder (e.g. per test). */
  respond(responder: Responder): void;
  /** Resolves when a request's connection closes before the response ended (cancel propagated). */
  nextAbort(): Promise<RecordedRequest>;
  /**
   * Resolves when a request matching `match` has had its connection closed before the
   * response ended — at once if that already happened. Unlike `nextAbort()`, an earlier
   * test's late abort cannot satisfy it.
   */
  abortOf(match: (request: RecordedRequest) => boolean): Promise<RecordedRequest>;
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  readonly connectionCount: number;
  /** Destroys every open connection now (a cut at a moment the test chooses, e.g. mid-stream). */
  resetConnections(): void;
  close(): Promise<void>;
}

/** Splits a recorded transcript into chunks of at most `size` bytes: cuts land anywhere. */
export function splitEvery(text: string, size: number): Uint8Array[] {
  const bytes = Buffer.from(text, "utf8");
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** A JSON response. */
export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): ScriptedResponse {
  return { status, headers: { "content-type": "application/json", ...headers }, chunks: [JSON.stringify(body)] };
}

/** An SSE response replaying `chunks` verbatim. */
export function sseResponse(chunks: Array<string | Uint8Array>, extra: Partial<ScriptedResponse> = {}): ScriptedResponse {
  return { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8" }, chunks, ...extra };
}

/**
 * A fake provider on 127.0.0.1 speaking whatever wire format the responder scripts:
 * real HTTP over loopback, so adapters are tested through undici exactly as in
 * production. Fault injection (delays, resets, cuts, stalls) is part of the script.
 */
export async function startFakeUpstream(responder: Responder = () => ({ status: 404 })): Promise<FakeUpstream> {
  let current = responder;
  const requests: RecordedRequest[] = [];
  const aborted: RecordedRequest[] = [];
  const abortWaiters: Array<(r: RecordedRequest) => void> = [];
  const matchWaiters = new Set<{ match: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }>();
  const sockets = new Set<Socket>();
  let connectionCount = 0;

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    connectionCount++;
    socket.on("close", () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const bodyText = Buffer.concat(chunks).toString("utf8");
    let body: unknown;
    try {
      body = bodyText.length > 0 ? JSON.parse(bodyText) : undefined;
    } catch {
      body = undefined;
    }
    const recorded: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      bodyText,
      body,
    };
    const index = requests.length;
    requests.push(recorded);
    let finished = false;
    res.on("close", () => {
      if (!finished) {
        aborted.push(recorded);
        const waiter = abortWaiters.shift();
        waiter?.(recorded);
        for (const w of matchWaiters) {
          if (!w.match(recorded)) continue;
          matchWaiters.delete(w);
          w.resolve(recorded);
        }
      }
    });
    const script = current(recorded, index);
    if (script.delayBeforeHeadersMs) await sleep(script.delayBeforeHeadersMs);
    if (res.destroyed) return;
    if (script.resetBeforeHeaders) {
      req.socket.destroy();
      return;
    }
    res.writeHead(script.status ?? 200, script.headers ?? {});
    res.flushHeaders();
    const body_ = script.chunks ?? [];
    for (let i = 0; i < body_.length; i++) {
      if (script.resetAfterChunks !== undefined && i >= script.resetAfterChunks) {
        req.socket.destroy();
        return;
      }
      if (i > 0 && script.delayBetweenChunksMs) await sleep(script.delayBetweenChunksMs);
      if (res.destroyed) return;
      const ok = res.write(body_[i]);
      if (!ok) await once(res, "drain");
    }
    if (script.resetAfterChunks !== undefined && script.resetAfterChunks <= body_.length) {
      req.socket.destroy();
      return;
    }
    if (script.stallAfterChunks) return;
    if (script.delayBeforeEndMs) {
      await sleep(script.delayBeforeEndMs);
      if (res.destroyed) return;
    }
    finished = true;
    res.end();
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    aborted,
    respond(next) {
      current = next;
    },
    nextAbort() {
      return new Promise((resolve) => abortWaiters.push(resolve));
    },
    abortOf(match) {
      const already = aborted.find(match);
      if (already !== undefined) return Promise.resolve(already);
      return new Promise((resolve) => matchWaiters.add({ match, resolve }));
    },
    get connectionCount() {
      return connectionCount;
    },
    resetConnections() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
}
