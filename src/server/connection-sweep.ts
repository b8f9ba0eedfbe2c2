import { constants, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type * as net from "node:net";
import type { Logger } from "../telemetry/logger.js";

export interface ConnectionSweepOptions {
  /** From a stream's headers to its request END_STREAM. */
  readonly requestBodyTimeoutMs: number;
  /** Longest time bytes may stay queued for a caller that does not read them. */
  readonly writeStallTimeoutMs: number;
  /** HTTP/2 PING on a session with open streams after this long without one; 0 (the default): none. */
  readonly keepAlivePingMs?: number | undefined;
  /** A session whose peer does not answer a keep-alive PING within this is destroyed. Default 20 s. */
  readonly keepAlivePingTimeoutMs?: number | undefined;
  readonly logger?: Logger | undefined;
}

/**
 * The time limits node does not enforce itself, checked by one periodic sweep over what is
 * open instead of a timer per stream (a stream costs a list node and a "close" listener):
 *
 * - **Request body** (HTTP/2): a stream whose request has not ended (END_STREAM) within
 *   `requestBodyTimeoutMs` of its headers is reset. HTTP/1.1 has node's requestTimeout.
 * - **Write stall** (HTTP/2 streams, HTTP/1.1 sockets): bytes queued for a caller that
 *   does not take them — its flow-control window stays shut, its socket is not read — for
 *   `writeStallTimeoutMs` without progress: the stream is reset, the socket destroyed, so
 *   the call's signal fires (its upstream request is cancelled) and what was queued is
 *   freed. Progress is the queue shrinking (see WriteProgress); a call waiting for a
 *   model's first token has nothing queued and is never touched.
 * - **Lingering sessions**: a session that is closing (GOAWAY sent or received: drain,
 *   keep-alive timeout, the caller's GOAWAY) and has no stream left, but whose peer neither
 *   closes nor reads the connection, is destroyed `closingLingerMs` later — node itself only
 *   ends its side and waits for the peer.
 * - **Reset floods**: nghttp2 answers a rapid-reset flood (CVE-2023-44487) with GOAWAY and
 *   then ignores the connection without closing it, and node is not told: it stayed open
 *   until the keep-alive timeout. Each session counts its reset streams in a token bucket
 *   as nghttp2 does (`resetBurst`, refilled at `resetsPerSecond`); an empty bucket closes
 *   the session (GOAWAY; open streams finish), then the linger rule above applies.
 * - **Keep-alive pings** (`keepAlivePingMs`): a session with open streams is sent an HTTP/2
 *   PING `keepAlivePingMs` after its last one (or after its streams opened), so a call that
 *   moves no byte for minutes (a model thinking, a quiet stream) keeps its connection
 *   through proxies and load balancers that drop idle ones; a peer that does not answer
 *   within `keepAlivePingTimeoutMs` is gone (a dead network path): its connection is
 *   destroyed, which cancels its calls. An idle session (no stream) is not pinged: the
 *   keep-alive timeout closes it.
 *
 * A reset is RST_STREAM ENHANCE_YOUR_CALM ("the peer is generating excessive load"): gRPC
 * and Connect clients report RESOURCE_EXHAUSTED, as for the other server limits, where
 * CANCEL would read as the caller's own cancel.
 *
 * Precision: a limit fires between the limit and the limit plus one sweep interval
 * (an eighth of the shortest limit, at most 1 s).
 */
export interface ConnectionSweep {
  /** Watches an HTTP/2 session (its streams, its close) until its socket closes. */
  watchSession(session: ServerHttp2Session, socket: net.Socket): void;
  /** Watches a new stream of a watched session until it closes. */
  watchStream(session: ServerHttp2Session, stream: ServerHttp2Stream): void;
  /** Streams of `session` still open. */
  openStreams(session: ServerHttp2Session): number;
  /** Watches an HTTP/1.1 connection (write stall) until it closes. */
  watchSocket(socket: net.Socket): void;
  /** Runs one sweep now (tests; the timer runs them on its own). */
  sweep(): void;
  /** Stops the timer. */
  stop(): void;
}

/** How long a closing session with no stream left may keep its connection. */
export const closingLingerMs = 1_000;
/** Reset streams a session may have at once, and the rate it earns more at: nghttp2's own defaults. */
export const resetBurst = 1_000;
export const resetsPerSecond = 33;

/**
 * Whether queued bytes are being taken. Progress is the queue shrinking below where it
 * stood when the wait began, or a "drain" (the queue emptied) since the last look — which
 * catches a writer that refills the queue between two looks. A queue that only grows (the
 * call keeps writing, nothing leaves) is no progress, and neither is one that stays put.
 */
class WriteProgress {
  /** The smallest queue seen since `stalledSince`. */
  low = 0;
  /** -1: nothing queued at the last look. */
  stalledSince = -1;
  /** "drain" events seen (counted once a backlog was first seen: `hooked`). */
  drains = 0;
  private drainsSeen = 0;
  hooked = false;

  /** True when bytes have been queued for `limitMs` and none of them left. */
  stalled(queued: number, now: number, limitMs: number): boolean {
    if (queued === 0) {
      this.stalledSince = -1;
      return false;
    }
    if (this.stalledSince < 0 || queued < this.low || this.drains !== this.drainsSeen) {
      this.low = queued;
      this.stalledSince = now;
      this.drainsSeen = this.drains;
      return false;
    }
    return now - this.stalledSince >= limitMs;
  }
}

class SessionWatch {
  open = 0;
  /** -1: not closing (or still has streams). */
  idleClosingSince = -1;
  /** Resets this session may still have before it is closed (refilled by the sweep). */
  resetTokens = resetBurst;
  /** When the last keep-alive PING was answered, or the session was last seen without streams. */
  pingedAt: number;
  /** When the unanswered keep-alive PING was sent; -1: none outstanding. */
  pingSentAt = -1;
  constructor(
    readonly session: ServerHttp2Session,
    readonly socket: net.Socket,
  ) {
    this.pingedAt = performance.now();
  }
}

/** Where a watched stream or session keeps its watch: read back without a hash lookup. */
const kWatch = Symbol("sluice.connectionSweep");
type WatchedStream = ServerHttp2Stream & { [kWatch]?: StreamWatch | undefined };
type WatchedSession = ServerHttp2Session & { [kWatch]?: SessionWatch | undefined };

/** One open stream: a node of the sweep's list of open streams (unlinked when it closes). */
class StreamWatch extends WriteProgress {
  /** The request's END_STREAM was seen: the body limit no longer applies. */
  bodyDone: boolean;
  prev: StreamWatch | undefined = undefined;
  next: StreamWatch | undefined = undefined;
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly session: SessionWatch,
    readonly openedAt: number,
  ) {
    super();
    this.bodyDone = stream.endAfterHeaders;
  }
}

export function createConnectionSweep(options: ConnectionSweepOptions): ConnectionSweep {
  const { requestBodyTimeoutMs, writeStallTimeoutMs, logger } = options;
  const keepAlivePingMs = options.keepAlivePingMs ?? 0;
  const keepAlivePingTimeoutMs = options.keepAlivePingTimeoutMs ?? 20_000;
  const sessions = new Map<ServerHttp2Session, SessionWatch>();
  /** Open streams, newest first: a list rather than a Map, so a stream costs no hashing. */
  let streams: StreamWatch | undefined;
  const sockets = new Map<net.Socket, WriteProgress>();

  // One listener function for every stream and socket (the emitter is `this`): no closure each.
  function onStreamClose(this: WatchedStream): void {
    const watch = this[kWatch];
    if (watch === undefined) return;
    this[kWatch] = undefined;
    if (watch.prev === undefined) streams = watch.next;
    else watch.prev.next = watch.next;
    if (watch.next !== undefined) watch.next.prev = watch.prev;
    const session = watch.session;
    session.open--;
    if (
      this.rstCode !== constants.NGHTTP2_NO_ERROR &&
      --session.resetTokens <= 0 &&
      !session.session.closed &&
      !session.session.destroyed
    ) {
      logger?.warn({ resetBurst, resetsPerSecond }, "http2 reset flood: closing the connection");
      session.session.close();
    }
  }
  function onSocketClose(this: net.Socket): void {
    sockets.delete(this);
  }
  function onStreamDrain(this: WatchedStream): void {
    const watch = this[kWatch];
    if (watch !== undefined) watch.drains++;
  }
  function onSocketDrain(this: net.Socket): void {
    const progress = sockets.get(this);
    if (progress !== undefined) progress.drains++;
  }

  function reset(stream: ServerHttp2Stream): void {
    // A reset with an error code makes the stream emit "error"; its owner may have no listener.
    stream.on("error", ignore);
    stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  let lastSweep = performance.now();

  function sweep(): void {
    const now = performance.now();
    const refill = ((now - lastSweep) / 1000) * resetsPerSecond;
    lastSweep = now;
    let bodyTimeouts = 0;
    let stalls = 0;
    for (let watch = streams, next = watch?.next; watch !== undefined; watch = next, next = watch?.next) {
      const stream = watch.stream;
      if (stream.closed || stream.destroyed) continue;
      if (!watch.bodyDone) {
        if (stream.readableEnded) watch.bodyDone = true;
        else if (now - watch.openedAt >= requestBodyTimeoutMs) {
          // Asked of nghttp2 only now: the body may have arrived without being read yet.
          if (stream.state.remoteClose) watch.bodyDone = true;
          else {
            reset(stream);
            bodyTimeouts++;
            continue;
          }
        }
      }
      const queued = stream.writableLength;
      if (queued > 0 && !watch.hooked) {
        // Only a stream seen with a backlog pays for a listener.
        watch.hooked = true;
        stream.on("drain", onStreamDrain);
      }
      if (watch.stalled(queued, now, writeStallTimeoutMs)) {
        reset(stream);
        stalls++;
      }
    }
    for (const [socket, progress] of sockets) {
      if (socket.destroyed) continue;
      const queued = socket.writableLength;
      if (queued > 0 && !progress.hooked) {
        progress.hooked = true;
        socket.on("drain", onSocketDrain);
      }
      if (progress.stalled(queued, now, writeStallTimeoutMs)) {
        socket.destroy();
        stalls++;
      }
    }
    let pingTimeouts = 0;
    for (const [session, watch] of sessions) {
      if (watch.resetTokens > 0) watch.resetTokens = Math.min(resetBurst, watch.resetTokens + refill);
      if (keepAlivePingMs > 0 && keepAlive(session, watch, now)) {
        pingTimeouts++;
        continue;
      }
      if (watch.open > 0 || !(session.closed || session.destroyed)) {
        watch.idleClosingSince = -1;
      } else if (watch.idleClosingSince < 0) {
        watch.idleClosingSince = now;
      } else if (now - watch.idleClosingSince >= closingLingerMs) {
        watch.socket.destroy();
        sessions.delete(session);
      }
    }
    if (pingTimeouts > 0)
      logger?.info({ pingTimeouts, keepAlivePingTimeoutMs }, "closed http2 connections: keep-alive ping unanswered");
    if (bodyTimeouts > 0 || stalls > 0) {
      // One line per sweep, not one per stream: a flood of slow streams is not a flood of lines.
      logger?.info({ bodyTimeouts, writeStalls: stalls, requestBodyTimeoutMs, writeStallTimeoutMs }, "reset stalled streams");
    }
  }

  /** Pings `session` when it is due; true when its unanswered ping timed out and the session was destroyed. */
  function keepAlive(session: ServerHttp2Session, watch: SessionWatch, now: number): boolean {
    if (session.closed || session.destroyed) return false;
    if (watch.pingSentAt >= 0) {
      if (now - watch.pingSentAt < keepAlivePingTimeoutMs) return false;
      watch.socket.destroy();
      session.destroy();
      sessions.delete(session);
      return true;
    }
    if (watch.open === 0) {
      // Counted from when streams are open: an idle session is the keep-alive timeout's.
      watch.pingedAt = now;
      return false;
    }
    if (now - watch.pingedAt < keepAlivePingMs) return false;
    watch.pingSentAt = now;
    try {
      const sent = session.ping((err) => {
        if (err !== null) return;
        watch.pingSentAt = -1;
        watch.pingedAt = performance.now();
      });
      // node refuses a ping while too many are outstanding: count from now, try again later.
      if (!sent) watch.pingSentAt = -1;
    } catch {
      watch.pingSentAt = -1;
    }
    return false;
  }

  const limits = [requestBodyTimeoutMs, writeStallTimeoutMs];
  if (keepAlivePingMs > 0) limits.push(keepAlivePingMs, keepAlivePingTimeoutMs);
  const intervalMs = Math.min(1_000, Math.max(10, Math.floor(Math.min(...limits) / 8)));
  const timer = setInterval(sweep, intervalMs);
  timer.unref();

  return {
    watchSession(session, socket) {
      const watch = new SessionWatch(session, socket);
      sessions.set(session, watch);
      (session as WatchedSession)[kWatch] = watch;
      socket.once("close", () => sessions.delete(session));
    },

    watchStream(session, stream) {
      const sessionWatch = (session as WatchedSession)[kWatch];
      if (sessionWatch === undefined) return;
      sessionWatch.open++;
      const watch = new StreamWatch(stream, sessionWatch, performance.now());
      (stream as WatchedStream)[kWatch] = watch;
      watch.next = streams;
      if (streams !== undefined) streams.prev = watch;
      streams = watch;
      stream.once("close", onStreamClose);
    },

    openStreams(session) {
      return (session as WatchedSession)[kWatch]?.open ?? 0;
    },

    watchSocket(socket) {
      sockets.set(socket, new WriteProgress());
      socket.once("close", onSocketClose);
    },

    sweep,

    stop() {
      clearInterval(timer);
    },
  };
}

function ignore(): void {}
