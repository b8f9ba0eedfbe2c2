import type { TelemetryConfig } from "../config/schema.js";
import { type RpcSemconv, rpcSemconvFrom } from "./gen-ai-semconv.js";
import { type OtlpExportSettings, otlpExportSettings } from "./otlp-exporter-from-env.js";
import { TracingEnv } from "./tracing-env.js";

export type SamplerName =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio";

const samplerNames: readonly string[] = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] satisfies SamplerName[];

/** How the batch span processor queues and sends (OTEL_BSP_*; unset: the SDK's defaults). */
export interface BatchSettings {
  readonly scheduledDelayMillis?: number | undefined;
  readonly exportTimeoutMillis?: number | undefined;
  readonly maxQueueSize?: number | undefined;
  readonly maxExportBatchSize?: number | undefined;
}

/** Everything tracing is configured with, resolved once at startup from the config file and the environment. */
export interface TracingSettings {
  /** Where spans go; undefined: export is off (only trace context is propagated). */
  readonly export: OtlpExportSettings | undefined;
  readonly sampler: { readonly name: SamplerName; readonly ratio: number };
  /** Resource attributes (OTEL_RESOURCE_ATTRIBUTES, with service.name decided). */
  readonly resource: Readonly<Record<string, string>>;
  readonly batch: BatchSettings;
  readonly rpcSemconv: RpcSemconv;
  /** Values that could not be used (the default was used instead): logged once at startup. */
  readonly problems: readonly string[];
}

/**
 * The tracing settings. Precedence, highest first:
 *
 * - export: OTEL_SDK_DISABLED=true turns it off; else OTEL_TRACES_EXPORTER (`otlp` on,
 *   `none` off; another exporter is not supported: noted, and export stays off unless
 *   `otlp` is also listed); else `telemetry.tracing.exporter`.
 * - endpoint, protocol, headers, timeout, compression: OTEL_EXPORTER_OTLP_TRACES_*, then
 *   OTEL_EXPORTER_OTLP_*, then the config file (otlp-exporter-from-env.ts).
 * - sampler: OTEL_TRACES_SAMPLER (the six standard samplers) with OTEL_TRACES_SAMPLER_ARG
 *   as the ratio; else parentbased_traceidratio. The ratio is OTEL_TRACES_SAMPLER_ARG, else
 *   `telemetry.tracing.sampleRatio`.
 * - service.name: OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES, then "sluice".
 *
 * Unknown values are never fatal: each is noted in `problems` and the next source applies.
 */
export function tracingSettings(
  config: TelemetryConfig["tracing"],
  env: Readonly<Record<string, string | undefined>>,
): TracingSettings {
  const vars = new TracingEnv(env);
  const exporting = exportOn(config, vars);
  const settings: TracingSettings = {
    export: exporting ? otlpExportSettings(config, vars) : undefined,
    sampler: sampler(config, vars),
    resource: resource(vars),
    batch: {
      scheduledDelayMillis: vars.number("OTEL_BSP_SCHEDULE_DELAY", { min: 0, integer: true }),
      exportTimeoutMillis: vars.number("OTEL_BSP_EXPORT_TIMEOUT", { min: 1, integer: true }),
      maxQueueSize: vars.number("OTEL_BSP_MAX_QUEUE_SIZE", { min: 1, integer: true }),
      maxExportBatchSize: vars.number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", { min: 1, integer: true }),
    },
    rpcSemconv: rpcSemconvFrom(vars.string("OTEL_SEMCONV_STABILITY_OPT_IN")),
    problems: vars.problems,
  };
  return settings;
}

function exportOn(config: TelemetryConfig["tracing"], env: TracingEnv): boolean {
  if (env.flag("OTEL_SDK_DISABLED")) return false;
  const listed = env.string("OTEL_TRACES_EXPORTER");
  if (listed === undefined) return config.exporter === "otlp";
  const exporters = listed
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  if (exporters.includes("none")) return false;
  const unsupported = exporters.filter((name) => name !== "otlp");
  if (unsupported.length > 0) {
    env.problem(`OTEL_TRACES_EXPORTER: ${unsupported.join(", ")} not supported (only otlp and none); ignored`);
  }
  return exporters.includes("otlp");
}

function sampler(config: TelemetryConfig["tracing"], env: TracingEnv): TracingSettings["sampler"] {
  const ratio = env.number("OTEL_TRACES_SAMPLER_ARG", { min: 0, max: 1 }) ?? config.sampleRatio;
  const name = env.string("OTEL_TRACES_SAMPLER")?.toLowerCase();
  if (name === undefined) return { name: "parentbased_traceidratio", ratio };
  if (samplerNames.includes(name)) return { name: name as SamplerName, ratio };
  env.problem(`OTEL_TRACES_SAMPLER=${JSON.stringify(name)} is not supported; using parentbased_traceidratio`);
  return { name: "parentbased_traceidratio", ratio };
}

function resource(env: TracingEnv): Record<string, string> {
  const attributes = env.keyValues("OTEL_RESOURCE_ATTRIBUTES");
  attributes["service.name"] = env.string("OTEL_SERVICE_NAME") ?? attributes["service.name"] ?? "sluice";
  return attributes;
}
