import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { TelemetryConfig } from "../config/schema.js";
import type { TracingBackend } from "./call-telemetry-hub.js";
import type { Logger } from "./logger.js";
import { semconvVersion } from "./gen-ai-semconv.js";
import { createOtlpTraceExporter } from "./otlp-exporter-from-env.js";
import { createPropagationOnly } from "./tracing-propagation.js";
import { createTracerProvider } from "./tracing-provider.js";
import { tracingSettings } from "./tracing-settings.js";
import { createRecordedSpans } from "./tracing-spans.js";

/** Spans for calls and attempts, and W3C trace context in and out (docs/tracing.md). */
export interface Tracing extends TracingBackend {
  /** Whether spans are recorded and exported; false: trace context is only propagated. */
  readonly exporting: boolean;
  /** Exports what is buffered now. */
  forceFlush(): Promise<void>;
  /** Exports what is buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface TracingDeps {
  readonly config: TelemetryConfig["tracing"];
  /** Where the OTEL_* variables are read (process.env in production). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where configuration problems (unknown values, each replaced by its default) and the export target are logged, once. */
  readonly logger?: Pick<Logger, "warn" | "info"> | undefined;
  /** Replaces the OTLP exporter when export is on (tests). */
  readonly exporter?: SpanExporter | undefined;
  /** How long `shutdown` waits for the last spans to be exported; default 3 s. */
  readonly shutdownTimeoutMs?: number | undefined;
}

/** The scope name of Sluice's spans. */
export const tracerName = "sluice";

/**
 * The gateway's tracing, decided once at startup (tracing-settings.ts): with export off,
 * the default, trace context is propagated and nothing recorded (tracing-propagation.ts);
 * with export on, spans are recorded by this gateway's own tracer provider and sent by
 * OTLP/HTTP in batches (tracing-spans.ts, tracing-provider.ts).
 */
export function createTracing(deps: TracingDeps): Tracing {
  const settings = tracingSettings(deps.config, deps.env);
  for (const problem of settings.problems) report(deps.logger, problem);
  if (settings.export === undefined) {
    return { ...createPropagationOnly(), exporting: false, forceFlush: async () => {}, shutdown: async () => {} };
  }
  const provider = createTracerProvider(settings, deps.exporter ?? createOtlpTraceExporter(settings.export));
  const { url, protocol } = settings.export;
  deps.logger?.info(
    { url, protocol, sampler: settings.sampler.name, ratio: settings.sampler.ratio, semconv: semconvVersion },
    "tracing: exporting spans",
  );
  let stopped: Promise<void> | undefined;
  return {
    ...createRecordedSpans(provider.getTracer(tracerName), settings.rpcSemconv),
    exporting: true,
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      stopped ??= bounded(provider.shutdown(), deps.shutdownTimeoutMs ?? 3_000, () =>
        deps.logger?.warn({ url }, "tracing: spans not exported at shutdown (the collector did not answer in time)"),
      );
      return stopped;
    },
  };
}

/**
 * Shutdown waits for the last batch, but not for long: with the collector down the
 * exporter retries for its whole timeout (10 s by default), which would hold up a
 * graceful shutdown for spans nobody will receive.
 */
function bounded(work: Promise<void>, ms: number, late: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      late();
      resolve();
    }, ms);
    timer.unref();
  });
  return Promise.race([work.catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
}

/** Never silent: without a logger, a process warning. */
function report(logger: TracingDeps["logger"], problem: string): void {
  if (logger !== undefined) logger.warn({ problem }, "tracing configuration: value ignored");
  else process.emitWarning(`tracing configuration: ${problem}`);
}
