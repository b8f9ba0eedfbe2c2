import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Socket } from "node:net";
import { Code } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ConfigError } from "../config/load-config.js";
import type { SluiceConfig } from "../config/schema.js";
import type { Logger } from "../telemetry/logger.js";
import { createHealthService, healthWatchPath, type HealthService } from "./health-service.js";
import { createOnePortListener } from "./one-port-listener.js";
import { createReflectionService, reflectionServices } from "./reflection-service.js";
import { parseListenAddress, formatUrl } from "./listen-address.js";
import { createConnectUnaryFastLane } from "./connect-unary-fast-lane.js";
import { createConnectStreamFastLane } from "./connect-stream-fast-lane.js";
import { createGrpcFastLane } from "./grpc-fast-lane.js";
import { createGrpcWebFastLane } from "./grpc-web-fast-lane.js";
import { createOpenAiCompatLane } from "./openai-compat-lane.js";
import { createAnthropicCompatLane } from "./anthropic-compat-lane.js";
import { createConnectNodeHandler } from "./connect-node-handler.js";
import { maxTimerMs } from "./timeout-clamp.js";
import { createHealthzRoute, type HealthDetails } from "./healthz-route.js";
import { createMetricsRoute, type MetricsExposition } from "./metrics-route.js";
import { createActiveCalls } from "./active-calls.js";
import { createLoadShedding, type Refusal } from "./load-shedding.js";
import { createCallQueue, type QueueRefusal } from "./call-queue.js";
import { createRequestByteBudget } from "./request-byte-budget.js";
import { prepareLaneRoutes } from "./lane-routes.js";
import { registerRouteTable, type RouteTable } from "./route-table.js";
import { useNodeTextEncoding } from "../wire/protobuf-text-encoding.js";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import type { LoadShedReason, ServerLoadMetrics } from "../telemetry/metrics-server.js";

export interface SluiceServerOptions {
  readonly config: SluiceConfig;
  /** The RPCs and the interceptor chain every lane applies. */
  readonly routes: RouteTable;
  /** Reported at GET /healthz beside the serving status. */
  readonly healthDetails: HealthDetails;
  /**
   * Served at `telemetry.metrics.path` when `telemetry.metrics.expose` is `serving` (the
   * default); its `serverLoad`, when it has one, is given the calls in progress, the queue
   * and each load-shedding refusal whatever `expose` says.
   */
  readonly metrics?: (MetricsExposition & { readonly serverLoad?: ServerLoadMetrics | undefined }) | undefined;
  readonly logger: Logger;
  /** See OnePortListenerOptions.onConnection. */
  readonly onConnection?: ((socket: Socket) => void) | undefined;
  /**
   * Default true. False serves every call through connect-node, no lane consulted: the
   * reference behaviour the lanes are tested against (test/integration/lane-cases.test.ts),
   * and a diagnostic switch when a lane is suspected.
   */
  readonly fastLanes?: boolean | undefined;
}

export interface ListeningAddress {
  readonly host: string;
  readonly port: number;
  /** e.g. http://127.0.0.1:8080 (https with TLS). */
  readonly url: string;
}

export interface SluiceServer {
  /** Binds `config.listen` (port 0 picks a free port; the real one is returned). */
  listen(): Promise<ListeningAddress>;
  /**
   * Graceful drain, then close: health NOT_SERVING, new connections refused, in-flight
   * calls run up to `server.drainTimeoutMs`, then are cancelled with UNAVAILABLE "server is
   * shutting down", then every connection is closed. Idempotent.
   */
  shutdown(reason?: string): Promise<void>;
  readonly health: HealthService;
  /** RPCs and requests in progress (Health.Watch streams excluded: they last as long as their caller). */
  readonly inFlight: number;
  /** Calls waiting in the queue at `server.maxConcurrentCalls` (`server.queue`). */
  readonly queued: number;
  /**
   * A configuration reload: serves `routes` from now on, atomically — every lane and
   * connect-node switch together. A request already dispatched keeps the table it got
   * (in-flight calls finish under the configuration they started with). The RPC set (and
   * so the health and reflection lists) is the same in every table Sluice builds.
   */
  setRoutes(routes: RouteTable, healthDetails?: HealthDetails): void;
}

/**
 * After the drain deadline the shutdown signal aborts what is left; this bounds how long
 * their error statuses get to reach callers before sockets are destroyed (a handler that
 * ignores its signal cannot hold shutdown hostage).
 */
const cancelGraceMs = 1_000;

/**
 * The server: the Connect router (Sluice's services, health, reflection) behind one port
 * speaking gRPC, gRPC-Web and Connect over HTTP/1.1 and HTTP/2, with graceful drain.
 */
export function createSluiceServer(options: SluiceServerOptions): SluiceServer {
  const { config, logger } = options;
  const routes = options.routes;
  const fastLanes = options.fastLanes ?? true;
  // Every binary message the server writes encodes its strings through this (process-wide).
  useNodeTextEncoding();
  const { host, port } = parseListenAddress(config.listen);
  const tls = config.server.tls
    ? {
        cert: readFileSync(config.server.tls.certFile),
        key: readFileSync(config.server.tls.keyFile),
        ca: readClientCa(config.server.tls.clientCaFile),
      }
    : undefined;

  const health = createHealthService({ services: routes.services.map((service) => service.typeName) });
  const reflection = createReflectionService({ services: [...routes.services, Health, ...reflectionServices] });
  const shutdownController = new AbortController();
  // Every call links its signal to this one while it runs: thousands of listeners are
  // expected, not a leak (create-server.test: "no listener warning").
  setMaxListeners(0, shutdownController.signal);

  // Unknown JSON fields are an error, not silently dropped: a misspelt setting
  // ("temprature") must not quietly change nothing (README "The API").
  const jsonOptions = { ignoreUnknownFields: false };
  // One set of active calls for every lane, whichever route table they serve.
  const active = createActiveCalls(shutdownController.signal);
  // A caller's deadline above this is clamped to it, never fired at once (timeout-clamp.ts).
  const maxDeadlineMs = Math.min(config.server.maxDeadlineMs, maxTimerMs);
  const laneOptions = {
    active,
    maxRequestBytes: config.server.maxRequestBytes,
    requestBytes: createRequestByteBudget(config.server.maxBufferedRequestBytes),
    maxDeadlineMs,
  };
  /** Everything built from one route table: the lanes (one preparation of the table for all) and connect-node. */
  function serving(table: RouteTable) {
    const lane = { ...laneOptions, routes: prepareLaneRoutes(table, jsonOptions) };
    return {
      fastLane: createConnectUnaryFastLane({ ...lane, jsonOptions }),
      connectStreamLane: createConnectStreamFastLane({ ...lane, jsonOptions }),
      grpcLane: createGrpcFastLane(lane),
      grpcWebLane: createGrpcWebFastLane(lane),
      // POST /v1/chat/completions and GET /v1/models, through the same routes and chain (openai-compat-lane.ts).
      openAiLane: createOpenAiCompatLane({ ...lane, heartbeatMs: config.server.sse.heartbeatMs }),
      // POST /v1/messages and /v1/messages/count_tokens, the same way (anthropic-compat-lane.ts).
      anthropicLane: createAnthropicCompatLane({ ...lane, heartbeatMs: config.server.sse.heartbeatMs }),
      rpcHandler: createConnectNodeHandler({
        jsonOptions,
        routes(router) {
          registerRouteTable(router, table);
          health.register(router);
          reflection.register(router);
        },
        readMaxBytes: config.server.maxRequestBytes,
        shutdownSignal: shutdownController.signal,
        maxDeadlineMs,
      }),
    };
  }
  // Read once per request: setRoutes swaps the whole set at once.
  let current = serving(routes);
  let healthDetails = options.healthDetails;
  const healthz = createHealthzRoute(
    () => ({
      ...healthDetails(),
      load: { inProgress: inFlight, maxConcurrentCalls, queued: queue.length, queueSize: queueConfig.size },
    }),
    health,
    { details: config.server.healthzDetails },
  );
  const metricsConfig = config.telemetry.metrics;
  const metricsRoute =
    options.metrics !== undefined && metricsConfig.expose === "serving"
      ? createMetricsRoute(options.metrics, metricsConfig.path, logger)
      : () => false;
  /** The plain-HTTP routes beside the RPCs (answered while shedding too). */
  const plainRoute = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => healthz(req, res) || metricsRoute(req, res);
  // Past this many calls in progress, new ones wait in a short queue (call-queue.ts) or,
  // when it is full, off (size 0) or waited in too long, are refused (load-shedding.ts).
  const { maxConcurrentCalls, queue: queueConfig } = config.server;
  const shedding = createLoadShedding(maxConcurrentCalls, queueConfig);
  const queue = createCallQueue(queueConfig);
  const serverLoad = options.metrics?.serverLoad;
  serverLoad?.observe(() => ({ inProgress: inFlight, queued: queue.length }));

  let inFlight = 0;
  let draining = false;
  let onIdle: (() => void) | undefined;

  // The hot path: one counter and one listener per request.
  function onRequestDone(): void {
    inFlight--;
    // The queue is only touched when calls wait in it (the server was at the cap).
    if (queue.length !== 0) admitWaiting();
    if (!draining) return;
    // The connection this response used may now be idle; during drain it is closed.
    listener.closeIdleConnections();
    if (inFlight === 0) onIdle?.();
  }

  function handle(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void {
    if (req.url !== healthWatchPath) {
      // At the cap: queued or refused in the caller's protocol before a byte is read;
      // /healthz, /metrics and the gRPC health service still answer at once.
      if (inFlight >= maxConcurrentCalls && !isHealthRpc(req.url)) {
        if (!plainRoute(req, res)) waitForSlot(req, res);
        return;
      }
      inFlight++;
      res.once("close", onRequestDone);
    }
    serve(req, res);
  }

  function serve(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void {
    // The fast lanes take the common calls (Connect unary and streaming, gRPC-Web;
    // gRPC binary is taken earlier, as a raw stream: handleStream) and decline everything
    // else before reading a byte; connect-node serves the rest.
    const lanes = current;
    if (
      !(fastLanes && (lanes.fastLane(req, res) || lanes.connectStreamLane(req, res) || lanes.grpcWebLane(req, res))) &&
      !lanes.openAiLane(req, res) &&
      !lanes.anthropicLane(req, res) &&
      !plainRoute(req, res)
    ) {
      lanes.rpcHandler(req, res);
    }
  }

  /**
   * At the cap: a call the queue can take waits in it, its request unread (backpressure),
   * until a call ends and it is the oldest (`admitWaiting`), its caller goes away (it just
   * leaves), or `server.queue.maxWaitMs` passes (refused). Otherwise it is refused at once.
   */
  function waitForSlot(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void {
    if (draining) return refuse(shedding.draining, "draining", req, res);
    if (queueConfig.size === 0) return refuse(shedding.noQueue, "no_queue", req, res);
    // A caller already gone is not queued (nor answered: refuseRequest skips it).
    if (res.destroyed) return;
    const leave = () => waiting?.leave();
    const waiting = queue.enqueue({
      start() {
        res.off("close", leave);
        // Gone between its close and the event (emitted on the next tick): nothing to start.
        if (res.destroyed) return;
        inFlight++;
        res.once("close", onRequestDone);
        serve(req, res);
      },
      refuse(reason: QueueRefusal) {
        res.off("close", leave);
        refuse(reason === "draining" ? shedding.draining : shedding.queueTimeout, reason, req, res);
      },
    });
    if (waiting === undefined) return refuse(shedding.queueFull, "queue_full", req, res);
    res.once("close", leave);
  }

  function refuse(
    refusal: Refusal,
    reason: LoadShedReason,
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void {
    // A caller that already went away is neither answered nor counted.
    if (res.destroyed) return;
    refusal.refuseRequest(req, res);
    serverLoad?.shed(reason);
  }

  /** A call ended: the oldest waiters take the free slots (one, unless some left meanwhile). */
  function admitWaiting(): void {
    while (inFlight < maxConcurrentCalls && queue.admit());
  }

  /** HTTP/2 streams the gRPC lane serves raw, without a compatibility request/response pair. */
  function handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    if (inFlight >= maxConcurrentCalls && !isHealthRpc(headers[":path"])) {
      // At the cap a gRPC stream that cannot wait is refused here, raw. One the queue can take
      // (and any other stream) goes on to `handle`, which queues it: a queued gRPC call is then
      // served through node's compatibility layer and connect-node, not the raw lane.
      if (!draining && queueConfig.size !== 0 && queue.length < queueConfig.size) return false;
      const [refusal, reason] = draining
        ? ([shedding.draining, "draining"] as const)
        : queueConfig.size === 0
          ? ([shedding.noQueue, "no_queue"] as const)
          : ([shedding.queueFull, "queue_full"] as const);
      // A stream the caller already reset is let go, not counted.
      const gone = stream.destroyed;
      if (!refusal.refuseStream(stream, headers)) return false;
      if (!gone) serverLoad?.shed(reason);
      return true;
    }
    if (!current.grpcLane(stream, headers)) return false;
    inFlight++;
    stream.once("close", onRequestDone);
    return true;
  }

  const listener = createOnePortListener({
    handler: handle,
    // Without lanes no raw stream handler: every HTTP/2 stream takes node's compatibility layer.
    streamHandler: fastLanes ? handleStream : undefined,
    tls,
    headersTimeoutMs: config.server.headersTimeoutMs,
    keepAliveTimeoutMs: config.server.keepAliveTimeoutMs,
    requestBodyTimeoutMs: config.server.requestBodyTimeoutMs,
    writeStallTimeoutMs: config.server.writeStallTimeoutMs,
    maxHeaderBytes: config.server.maxHeaderBytes,
    http2: config.server.http2,
    logger,
    onConnection: options.onConnection,
  });

  /** Resolves true when nothing is in flight, false after `ms`. */
  function idleWithin(ms: number): Promise<boolean> {
    if (inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        onIdle = undefined;
        resolve(false);
      }, ms);
      onIdle = () => {
        clearTimeout(timer);
        onIdle = undefined;
        resolve(true);
      };
    });
  }

  let listening = false;
  let shutdownPromise: Promise<void> | undefined;

  async function drainAndClose(reason: string): Promise<void> {
    draining = true;
    // Calls waiting for a slot are refused now (UNAVAILABLE, like those the drain cancels).
    queue.refuseAll();
    const drainTimeoutMs = config.server.drainTimeoutMs;
    logger.info({ reason, inFlight, drainTimeoutMs }, "sluice draining");
    health.drain();
    listener.drain();
    const drained = await idleWithin(drainTimeoutMs);
    if (!drained) logger.warn({ inFlight }, "drain timeout: cancelling in-flight calls");
    // Always aborted: it also ends Health.Watch streams, which drain does not wait for.
    shutdownController.abort(gatewayError(Code.Unavailable, reasons.serverShuttingDown, "server is shutting down"));
    if (!drained) await idleWithin(cancelGraceMs);
    await listener.close();
    logger.info({ reason }, "sluice stopped");
  }

  return {
    health,
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return queue.length;
    },

    setRoutes(table, details) {
      current = serving(table);
      if (details !== undefined) healthDetails = details;
    },

    async listen() {
      if (listening || shutdownPromise) throw new Error("sluice server: listen() called twice or after shutdown");
      listening = true;
      const address = await listener.listen(host, port);
      return { host, port: address.port, url: formatUrl(tls ? "https" : "http", host, address.port) };
    },

    shutdown(reason = "shutdown") {
      shutdownPromise ??= drainAndClose(reason);
      return shutdownPromise;
    },
  };
}

const healthRpcPrefix = `/${Health.typeName}/`;

/**
 * The gRPC health service (Check, Watch): served even at the cap, never queued or refused —
 * an overloaded replica stays SERVING to its probes rather than being pulled out of rotation.
 */
function isHealthRpc(path: string | undefined): boolean {
  return path?.startsWith(healthRpcPrefix) === true;
}

/** The mTLS client CA (`server.tls.clientCaFile`); one that does not read stops startup, naming the file. */
function readClientCa(file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`server.tls.clientCaFile: cannot read ${file}: ${(err as Error).message}`);
  }
}
