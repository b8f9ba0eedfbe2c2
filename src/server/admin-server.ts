import { type FileHandle, mkdtemp, open, rm } from "node:fs/promises";
import * as http from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../telemetry/logger.js";
import { createCpuProfiler } from "./cpu-profile.js";
import type { ListeningAddress } from "./create-server.js";
import type { HealthService } from "./health-service.js";
import { createHealthzRoute, type HealthDetails } from "./healthz-route.js";
import { writeHeapSnapshot } from "./heap-snapshot.js";
import { formatUrl, parseListenAddress } from "./listen-address.js";
import { createMetricsRoute, type MetricsExposition } from "./metrics-route.js";

export interface AdminServerOptions {
  /** `admin.listen`: a bare port ("9901") binds 127.0.0.1; "host:port" as given (port 0: a free one). */
  readonly listen: string;
  /** The serving listener's health (its SERVING / NOT_SERVING status is reported at /healthz). */
  readonly health: HealthService;
  /** Breaker states and in-flight counts: always reported here, whatever `server.healthzDetails` says. */
  readonly healthDetails: HealthDetails;
  /** Served at `metricsPath` when given (main passes it with `telemetry.metrics.expose: admin`). */
  readonly metrics?: MetricsExposition | undefined;
  readonly metricsPath?: string | undefined;
  readonly logger: Logger;
}

export interface AdminServer {
  listen(): Promise<ListeningAddress>;
  /** Stops a profile in progress, closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** Longest CPU profile: long enough to catch a slow pattern, short enough not to be forgotten running. */
export const maxProfileSeconds = 60;
const defaultProfileSeconds = 10;

/** `admin.listen` → host and port: a bare port is loopback, so nothing is exposed unless asked for. */
export function parseAdminListen(listen: string): { host: string; port: number } {
  if (/^\d{1,5}$/.test(listen)) {
    const port = Number(listen);
    if (port > 65_535) throw new Error(`invalid admin.listen "${listen}": port above 65535`);
    return { host: "127.0.0.1", port };
  }
  return parseListenAddress(listen);
}

/**
 * The admin listener: operators' endpoints, on their own address (loopback unless
 * configured otherwise) and never on the serving port, where every caller could reach
 * them. Plain HTTP/1.1:
 *
 * - `GET /metrics` (`telemetry.metrics.path`) with `telemetry.metrics.expose: admin`;
 * - `GET /healthz`: the serving status with breaker states and in-flight counts;
 * - `GET /debug/pprof/profile?seconds=N`: a CPU profile of N seconds (1–60, default 10),
 *   one at a time (409 while one runs), answered as `.cpuprofile` JSON;
 * - `GET /debug/pprof/heap`: a heap snapshot, streamed as `.heapsnapshot` (409 while one is
 *   being taken or sent);
 *
 * and 404 for anything else.
 */
export function createAdminServer(options: AdminServerOptions): AdminServer {
  const { logger } = options;
  const { host, port } = parseAdminListen(options.listen);
  const healthz = createHealthzRoute(options.healthDetails, options.health, { details: true });
  const metricsRoute =
    options.metrics === undefined ? () => false : createMetricsRoute(options.metrics, options.metricsPath ?? "/metrics", logger);
  const profiler = createCpuProfiler();
  let heapBusy = false;
  /** Aborts profiles in progress when the listener closes. */
  const closing = new AbortController();

  const server = http.createServer((req, res) => {
    if (healthz(req, res) || metricsRoute(req, res)) return;
    const url = new URL(req.url ?? "/", "http://admin");
    if (url.pathname === "/debug/pprof/profile" || url.pathname === "/debug/pprof/heap") {
      if (req.method !== "GET") return text(res, 405, "method not allowed: use GET\n", { allow: "GET" });
      if (url.pathname === "/debug/pprof/profile") void serveProfile(url, res);
      else void serveHeap(res);
      return;
    }
    text(res, 404, "not found\n");
  });
  // Idle keep-alive connections must not hold close() open.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  async function serveProfile(url: URL, res: http.ServerResponse): Promise<void> {
    const seconds = profileSeconds(url.searchParams.get("seconds"));
    if (typeof seconds === "string") return text(res, 400, `${seconds}\n`);
    if (profiler.busy) return text(res, 409, "a CPU profile is already being recorded; try again when it is done\n");
    // The requester leaving (or the listener closing) stops the profile at once.
    const stop = new AbortController();
    const onClose = (): void => stop.abort();
    res.once("close", onClose);
    const onClosing = (): void => stop.abort();
    closing.signal.addEventListener("abort", onClosing);
    try {
      logger.info({ seconds }, "admin: recording a CPU profile");
      const profile = await profiler.record(seconds, stop.signal);
      if (profile === undefined || res.destroyed) {
        logger.info({ seconds }, "admin: CPU profile abandoned (requester left or listener closing)");
        return;
      }
      res.writeHead(200, {
        "content-type": "application/json",
        "content-disposition": `attachment; filename="${fileName("cpuprofile")}"`,
        "cache-control": "no-store",
        "content-length": String(Buffer.byteLength(profile)),
      });
      res.end(profile);
    } catch (err) {
      logger.error({ err }, "admin: CPU profile failed");
      if (!res.headersSent) text(res, 500, "CPU profile failed\n");
    } finally {
      res.off("close", onClose);
      closing.signal.removeEventListener("abort", onClosing);
    }
  }

  async function serveHeap(res: http.ServerResponse): Promise<void> {
    if (heapBusy) return text(res, 409, "a heap snapshot is already being taken; try again when it is done\n");
    heapBusy = true;
    let dir: string | undefined;
    let snapshot: FileHandle | undefined;
    try {
      logger.info("admin: writing a heap snapshot");
      dir = await mkdtemp(join(tmpdir(), "sluice-heap-"));
      snapshot = await open(await writeHeapSnapshot(dir), "r");
      const { size } = await snapshot.stat();
      // Removed before a byte is sent: the open handle keeps the data readable, and nothing
      // is left on disk whatever happens to the download (or the process) from here.
      await rm(dir, { recursive: true, force: true });
      dir = undefined;
      res.writeHead(200, {
        "content-type": "application/json",
        "content-disposition": `attachment; filename="${fileName("heapsnapshot")}"`,
        "cache-control": "no-store",
        "content-length": String(size),
      });
      const stream = snapshot.createReadStream();
      snapshot = undefined; // the stream closes it
      await pipeline(stream, res);
    } catch (err) {
      // The requester leaving mid-download is not worth an error line.
      if (!res.destroyed) logger.error({ err }, "admin: heap snapshot failed");
      if (!res.headersSent) text(res, 500, "heap snapshot failed\n");
      else res.destroy();
    } finally {
      heapBusy = false;
      await snapshot?.close();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    }
  }

  let closed: Promise<void> | undefined;
  return {
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      return { host, port: bound, url: formatUrl("http", host, bound) };
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        if (!server.listening) return resolve();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}

/** The `seconds` of a profile request, or what is wrong with it. */
function profileSeconds(value: string | null): number | string {
  if (value === null) return defaultProfileSeconds;
  const seconds = /^\d{1,3}$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds >= 1 && seconds <= maxProfileSeconds)) {
    return `seconds must be a whole number from 1 to ${maxProfileSeconds}, got "${value.slice(0, 32)}"`;
  }
  return seconds;
}

/** sluice-2026-12-01T10-20-30Z.cpuprofile */
function fileName(extension: string): string {
  return `sluice-${new Date()
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/:/g, "-")}.${extension}`;
}

function text(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}
