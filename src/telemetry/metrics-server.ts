import { Counter, Gauge, type Registry } from "prom-client";

/** Why the server refused a call to protect itself (`sluice_load_shed_total{reason}`). */
export type LoadShedReason = "no_queue" | "queue_full" | "queue_timeout" | "draining";

const loadShedReasons: readonly LoadShedReason[] = ["no_queue", "queue_full", "queue_timeout", "draining"];

/** The serving process's load, read when Prometheus scrapes. */
export interface ServerLoad {
  /** Calls (requests, streams) in progress: what `server.maxConcurrentCalls` caps. */
  readonly inProgress: number;
  /** Calls waiting in the queue for a slot (`server.queue.size` at most). */
  readonly queued: number;
}

/**
 * What the server reports to metrics. The server is built after the metrics (it serves
 * them), so it attaches its load here rather than through MetricsDeps; telemetry never
 * imports the server.
 */
export interface ServerLoadMetrics {
  /** Where the gauges read the load at scrape time (the server attaches itself; a later call replaces it). Until then: 0. */
  observe(load: () => ServerLoad): void;
  /** One refusal at the cap, in its reason. */
  shed(reason: LoadShedReason): void;
}

/**
 * `sluice_calls_in_progress` and `sluice_call_queue_length` (gauges read at scrape time),
 * `sluice_load_shed_total{reason}` (a counter per refusal; every reason shown from the
 * start, at 0, so `rate()` and alerts see the series before the first refusal).
 */
export function registerServerLoadMetrics(registry: Registry): ServerLoadMetrics {
  let load: () => ServerLoad = () => ({ inProgress: 0, queued: 0 });
  new Gauge({
    name: "sluice_calls_in_progress",
    help: "Calls (requests, streams; Health.Watch aside) in progress in the process: what server.maxConcurrentCalls caps.",
    registers: [registry],
    collect() {
      this.set(load().inProgress);
    },
  });
  new Gauge({
    name: "sluice_call_queue_length",
    help: "Calls waiting for a slot at server.maxConcurrentCalls (at most server.queue.size).",
    registers: [registry],
    collect() {
      this.set(load().queued);
    },
  });
  const shed = new Counter({
    name: "sluice_load_shed_total",
    help: "Calls refused at server.maxConcurrentCalls (RESOURCE_EXHAUSTED, SERVER_OVERLOADED; draining: UNAVAILABLE), by reason: no_queue, queue_full, queue_timeout, draining.",
    labelNames: ["reason"],
    registers: [registry],
  });
  // Resolved once: a refusal costs an increment, not a label lookup.
  const counters = new Map(loadShedReasons.map((reason) => [reason, shed.labels({ reason })] as const));
  for (const counter of counters.values()) counter.inc(0);

  return {
    observe(source) {
      load = source;
    },
    shed(reason) {
      counters.get(reason)?.inc();
    },
  };
}
