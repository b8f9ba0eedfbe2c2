import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { once } from "node:events";
import type { Logger } from "../telemetry/logger.js";
import { createConnectionSweep } from "./connection-sweep.js";

/** A request handler both `node:http` and the `node:http2` compatibility API can call. */
export type NodeRequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * Offered every HTTP/2 stream before a compatibility request/response pair is built for
 * it: returns true when it serves the stream itself (raw `ServerHttp2Stream`), false to
 * leave it to `handler`.
 */
export type Http2StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

export interface OnePortListenerOptions {
  readonly handler: NodeRequestHandler;
  /** See Http2StreamHandler. Unset: every HTTP/2 stream goes to `handler`. */
  readonly streamHandler?: Http2StreamHandler | undefined;
  /**
   * PEM cert and key: TLS with ALPN h2 + http/1.1. Unset: cleartext HTTP/1.1 and h2c prior
   * knowledge. `ca`: client certificates are requested and verified against it, but a
   * handshake without a valid one still succeeds (the socket is not `authorized`): the auth
   * step refuses such a call with UNAUTHENTICATED, or lets an API key / JWT decide.
   */
  readonly tls?:
    | { readonly cert: string | Buffer; readonly key: string | Buffer; readonly ca?: string | Buffer | undefined }
    | undefined;
  /** HTTP/1.1: time to receive a request's headers. Also bounds the sniff and the TLS handshake. */
  readonly headersTimeoutMs: number;
  /** Idle HTTP/1.1 keep-alive connections and HTTP/2 sessions with no open stream close after this. */
  readonly keepAliveTimeoutMs: number;
  /**
   * Time to receive a request's body. HTTP/2: from a stream's headers to its END_STREAM,
   * else the stream is reset (connection-sweep.ts). HTTP/1.1: the whole request, headers
   * included, and at least `headersTimeoutMs` (node's requestTimeout: 408, connection
   * closed). Default 30 s.
   */
  readonly requestBodyTimeoutMs?: number | undefined;
  /**
   * A response whose queued bytes the caller does not take for this long is reset (HTTP/2
   * stream) or its connection closed (HTTP/1.1). Default 30 s.
   */
  readonly writeStallTimeoutMs?: number | undefined;
  /** Largest request header block: HTTP/1.1 header bytes, HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE. Default 16 KiB. */
  readonly maxHeaderBytes?: number | undefined;
  /** HTTP/2 session limits. Defaults: 100 streams, 10 MB; keep-alive pings (connection-sweep.ts) off unless set. */
  readonly http2?:
    | {
        readonly maxConcurrentStreams: number;
        readonly maxSessionMemoryMb: number;
        readonly keepAlivePingMs?: number | undefined;
        readonly keepAlivePingTimeoutMs?: number | undefined;
      }
    | undefined;
  /** How often HTTP/1.1 header/request timeouts are checked. Default headersTimeoutMs / 4, within 50 ms – 30 s. */
  readonly connectionsCheckingIntervalMs?: number | undefined;
  readonly logger?: Logger | undefined;
  /**
   * Called with each accepted TCP socket before any byte is read (connection metrics;
   * tests use it to see each read the server makes and so split prefaces for certain).
   */
  readonly onConnection?: ((socket: net.Socket) => void) | undefined;
}

/**
 * One listening port. Owns every connection it accepted, so shutdown can close them all
 * (closing a `net.Server` alone leaves keep-alive connections and HTTP/2 sessions open).
 */
export interface OnePortListener {
  listen(host: string, port: number): Promise<net.AddressInfo>;
  /**
   * Starts a graceful close: new connections are refused, HTTP/2 sessions get GOAWAY (open
   * streams continue), idle HTTP/1.1 connections close, and busy ones close once their
   * response is done (call `closeIdleConnections` when a response finishes).
   */
  drain(): void;
  /** Closes HTTP/1.1 connections that are between requests. */
  closeIdleConnections(): void;
  /** Destroys every connection and session; resolves once the port is closed. */
  close(): Promise<void>;
  /** Open connections (TCP), whatever their protocol. */
  readonly connectionCount: number;
}

/** What the listener applies when its options leave a limit unset (the configuration's defaults). */
export const listenerDefaults = {
  requestBodyTimeoutMs: 30_000,
  writeStallTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  http2: { maxConcurrentStreams: 100, maxSessionMemoryMb: 10 },
} as const;

/**
 * HTTP/2 limits set explicitly at node's own defaults (README "Limits"): header fields per
 * block; frames nghttp2 rejects as invalid, and streams node refuses (over the stream limit,
 * out of session memory), before the session is closed.
 */
export const http2Fixed = { maxHeaderListPairs: 128, maxSessionInvalidFrames: 1_000, maxSessionRejectedStreams: 100 } as const;

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Classifies a connection by its first bytes: "h2" once all 24 bytes of the preface are
 * seen, "http1" as soon as one byte differs (a lone "P" may still be POST, PUT, PATCH or
 * PRI, so it stays "undecided"), "undecided" while a matching prefix is all there is.
 */
export function classifyFirstBytes(bytes: Uint8Array): "h2" | "http1" | "undecided" {
  const n = Math.min(bytes.length, http2Preface.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== http2Preface[i]) return "http1";
  return n === http2Preface.length ? "h2" : "undecided";
}

/** Properties node's HTTP/1 code reads from whichever server handles HTTP/1.1 connections. */
interface Http1Timeouts {
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
  closeIdleConnections(): void;
}

/**
 * Serves HTTP/1.1 and HTTP/2 on one port. Cleartext: each connection's first bytes are
 * sniffed (HTTP/2 prior knowledge vs HTTP/1.1) and the socket is handed to an internal
 * `http2` or `http` server. TLS: ALPN picks the protocol (`allowHTTP1`).
 */
export function createOnePortListener(options: OnePortListenerOptions): OnePortListener {
  const { handler, logger, headersTimeoutMs, keepAliveTimeoutMs } = options;
  const requestBodyTimeoutMs = options.requestBodyTimeoutMs ?? listenerDefaults.requestBodyTimeoutMs;
  const writeStallTimeoutMs = options.writeStallTimeoutMs ?? listenerDefaults.writeStallTimeoutMs;
  const maxHeaderBytes = options.maxHeaderBytes ?? listenerDefaults.maxHeaderBytes;
  const { maxConcurrentStreams, maxSessionMemoryMb } = options.http2 ?? listenerDefaults.http2;
  const { keepAlivePingMs, keepAlivePingTimeoutMs } = options.http2 ?? {};
  const checkingIntervalMs =
    options.connectionsCheckingIntervalMs ?? Math.min(30_000, Math.max(50, Math.floor(headersTimeoutMs / 4)));

  const sockets = new Set<net.Socket>();
  /** Cleartext sockets whose first bytes are still being read. */
  const sniffing = new Map<net.Socket, () => void>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const sweep = createConnectionSweep({
    requestBodyTimeoutMs,
    writeStallTimeoutMs,
    keepAlivePingMs,
    keepAlivePingTimeoutMs,
    logger,
  });
  /** The socket being handed to `h2`: its "session" event fires synchronously, with only a proxy of it. */
  let handingOff: net.Socket | undefined;
  let draining = false;

  function onRequest(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void {
    // A request that reached a kept-alive HTTP/1.1 connection during drain is served,
    // and the connection closes after it (HTTP/2 has GOAWAY for this).
    if (draining && req.httpVersionMajor === 1) res.setHeader("connection", "close");
    handler(req, res);
  }

  function trackSocket(socket: net.Socket): void {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  }

  function trackSession(session: http2.ServerHttp2Session): void {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.on("error", (err) => logger?.debug({ err: err.message }, "http2 session error"));
    if (handingOff !== undefined) sweep.watchSession(session, handingOff);
    if (draining) {
      session.close();
      return;
    }
    // Idle sessions close like idle keep-alive connections; a session with an open stream
    // stays even when no byte moved for a while (a model thinking before its first token).
    session.setTimeout(keepAliveTimeoutMs, () => {
      if (sweep.openStreams(session) === 0) session.close();
    });
  }

  function toHttp2(socket: net.Socket): void {
    handingOff = socket;
    try {
      h2.emit("connection", socket);
    } finally {
      handingOff = undefined;
    }
  }

  function toHttp1(socket: net.Socket): void {
    sweep.watchSocket(socket);
    h1.emit("connection", socket);
  }

  // Every limit explicit rather than node's defaults (README "Limits"): node advertises no
  // stream limit at all (2^32-1), and each open stream costs memory until it ends.
  const h2Options: http2.ServerOptions = {
    unknownProtocolTimeout: headersTimeoutMs,
    maxSessionMemory: maxSessionMemoryMb,
    maxHeaderListPairs: http2Fixed.maxHeaderListPairs,
    maxSessionInvalidFrames: http2Fixed.maxSessionInvalidFrames,
    maxSessionRejectedStreams: http2Fixed.maxSessionRejectedStreams,
    settings: { maxConcurrentStreams, maxHeaderListSize: maxHeaderBytes },
  };
  // Sessions live on `h2`, which has no "request" listener, so node builds no compatibility
  // pair per stream by itself: `streamHandler` may serve a stream raw (the gRPC lane) at
  // the cost of a stream; the rest are handed to `compat`, whose "stream" listener is
  // node's own compatibility layer (it builds the Http2ServerRequest/Response pair and
  // emits "request"). `compat` never owns a connection.
  const compat = http2.createServer(h2Options, onRequest);
  const h2 = http2.createServer(h2Options);
  const { streamHandler } = options;
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    sweep.watchStream(stream.session as http2.ServerHttp2Session, stream);
    if (streamHandler?.(stream, headers)) return;
    compat.emit("stream", stream, headers, flags, rawHeaders);
  });
  h2.on("session", trackSession);
  const h1 = http.createServer({ maxHeaderSize: maxHeaderBytes }, onRequest);
  const http1Server = h1;
  // connectionsCheckingInterval is a runtime property @types/node does not declare.
  const http1 = h1 as unknown as Http1Timeouts;

  let outer: net.Server;
  if (options.tls) {
    // TLS ends here; ALPN picks the inner server, as the sniff does for cleartext.
    const secure = tls.createServer({
      cert: options.tls.cert,
      key: options.tls.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: headersTimeoutMs,
      noDelay: true,
      ...(options.tls.ca === undefined
        ? {}
        : // A session resumed from an ID needs a context naming which verification it had.
          { ca: options.tls.ca, requestCert: true, rejectUnauthorized: false, sessionIdContext: "sluice-mtls" }),
    });
    secure.on("connection", (socket: net.Socket) => {
      trackSocket(socket);
      options.onConnection?.(socket);
    });
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      if (draining) {
        socket.destroy();
        return;
      }
      // No ALPN at all (an old client) is HTTP/1.1.
      if (socket.alpnProtocol === "h2") toHttp2(socket);
      else toHttp1(socket);
    });
    secure.on("tlsClientError", (err) => logger?.debug({ err: err.message }, "tls handshake failed"));
    outer = secure;
  } else {
    const plain = net.createServer({ noDelay: true }, (socket) => {
      trackSocket(socket);
      sniff(socket);
      options.onConnection?.(socket);
    });
    outer = plain;
  }
  http1.headersTimeout = headersTimeoutMs;
  // Node measures it from the request's first byte and never applies less than the headers
  // timeout (it swaps the two when the request timeout is shorter): said so, not hidden.
  http1.requestTimeout = Math.max(requestBodyTimeoutMs, headersTimeoutMs);
  http1.keepAliveTimeout = keepAliveTimeoutMs;
  http1.connectionsCheckingInterval = checkingIntervalMs;

  function sniff(socket: net.Socket): void {
    let seen: Buffer | undefined;
    // A connection that never sends (enough of) its first bytes is closed: neither inner
    // server has it yet, so none of their timeouts apply (one-port-listener.test: "idle").
    const timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
    const stop = (): void => {
      clearTimeout(timer);
      sniffing.delete(socket);
      socket.off("data", onData);
      socket.off("error", onGone);
      socket.off("end", onGone);
      socket.off("close", onGone);
    };
    function onGone(): void {
      stop();
      socket.destroy();
    }
    function onData(chunk: Buffer): void {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const verdict = classifyFirstBytes(seen);
      if (verdict === "undecided") return;
      stop();
      socket.pause();
      socket.unshift(seen);
      if (verdict === "h2") {
        // Not resumed: the session reads the unshifted bytes itself; resuming here would
        // lose them ("Received bad client magic byte string").
        toHttp2(socket);
      } else {
        toHttp1(socket);
        socket.resume();
      }
    }
    sniffing.set(socket, onGone);
    socket.on("data", onData);
    socket.once("error", onGone);
    socket.once("end", onGone);
    socket.once("close", onGone);
  }

  let closed: Promise<void> | undefined;

  return {
    async listen(host, port) {
      outer.listen({ host, port });
      await once(outer, "listening");
      // An http.Server that never listen()s never arms its header/request timeout checks
      // (node does that on "listening"); the HTTP/1.1 connections handed to it need them
      // (one-port-listener.test: "slow headers").
      http1Server.emit("listening");
      return outer.address() as net.AddressInfo;
    },

    drain() {
      if (draining) return;
      draining = true;
      closed = new Promise((resolve) => outer.close(() => resolve()));
      for (const session of sessions) session.close();
      for (const destroy of sniffing.values()) destroy();
      http1.closeIdleConnections();
    },

    closeIdleConnections() {
      http1.closeIdleConnections();
    },

    async close() {
      this.drain();
      sweep.stop();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      // Clears the inner server's timeout-check interval (it was never listening, so its
      // own close just emits "close").
      http1Server.close();
      await closed;
    },

    get connectionCount() {
      return sockets.size;
    },
  };
}
