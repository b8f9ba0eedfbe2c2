import { OTLPTraceExporter as OtlpJsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OtlpProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { TelemetryConfig } from "../config/schema.js";
import type { TracingEnv } from "./tracing-env.js";

export type OtlpProtocol = TelemetryConfig["tracing"]["protocol"];

/** Where and how spans are sent (OTLP over HTTP). */
export interface OtlpExportSettings {
  /** The full traces URL (".../v1/traces"). */
  readonly url: string;
  readonly protocol: OtlpProtocol;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMillis: number | undefined;
  readonly compression: "gzip" | "none" | undefined;
}

/** The OTLP/HTTP port's traces path when no endpoint is configured (the spec's default). */
export const defaultTracesUrl = "http://localhost:4318/v1/traces";

const protocols: readonly string[] = ["http/protobuf", "http/json"] satisfies OtlpProtocol[];

/**
 * The exporter's settings: the signal-specific variable, then the generic one, then the
 * config file (`telemetry.tracing.endpoint` / `protocol`), then the spec's defaults. A
 * generic or configured endpoint is a base URL that "v1/traces" is appended to; the
 * signal-specific one is used as it is.
 */
export function otlpExportSettings(config: TelemetryConfig["tracing"], env: TracingEnv): OtlpExportSettings {
  return {
    url: tracesUrl(config, env),
    protocol: protocol(config, env),
    // Generic first, signal-specific over it, key by key.
    headers: { ...env.keyValues("OTEL_EXPORTER_OTLP_HEADERS"), ...env.keyValues("OTEL_EXPORTER_OTLP_TRACES_HEADERS") },
    timeoutMillis:
      env.number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", { min: 1, integer: true }) ??
      env.number("OTEL_EXPORTER_OTLP_TIMEOUT", { min: 1, integer: true }),
    compression: compression(env),
  };
}

function tracesUrl(config: TelemetryConfig["tracing"], env: TracingEnv): string {
  const specific = env.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  if (specific !== undefined) {
    if (isHttpUrl(specific)) return specific;
    env.problem("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not an http(s) URL; ignored");
  }
  const base = env.string("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (base !== undefined) {
    if (isHttpUrl(base)) return withTracesPath(base);
    env.problem("OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL; ignored");
  }
  return config.endpoint === undefined ? defaultTracesUrl : withTracesPath(config.endpoint);
}

function withTracesPath(base: string): string {
  return base.endsWith("/") ? `${base}v1/traces` : `${base}/v1/traces`;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

function protocol(config: TelemetryConfig["tracing"], env: TracingEnv): OtlpProtocol {
  const set = env.first("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (set === undefined) return config.protocol;
  if (protocols.includes(set.value)) return set.value as OtlpProtocol;
  // grpc included: Sluice exports over HTTP only.
  env.problem(`${set.name}=${JSON.stringify(set.value)} is not http/protobuf or http/json; using ${config.protocol}`);
  return config.protocol;
}

function compression(env: TracingEnv): "gzip" | "none" | undefined {
  const set = env.first("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION");
  if (set === undefined) return undefined;
  if (set.value === "gzip" || set.value === "none") return set.value;
  env.problem(`${set.name}=${JSON.stringify(set.value)} is not gzip or none; ignored`);
  return undefined;
}

type ExporterConfig = NonNullable<ConstructorParameters<typeof OtlpProtoTraceExporter>[0]>;

/**
 * The OTLP/HTTP exporter for these settings: protobuf (the spec's default) or JSON. What
 * the settings do not say (TLS client certificates, OTEL_EXPORTER_OTLP_CERTIFICATE…) the
 * exporter reads from process.env itself.
 */
export function createOtlpTraceExporter(settings: OtlpExportSettings): SpanExporter {
  const config: ExporterConfig = {
    url: settings.url,
    headers: { ...settings.headers },
    timeoutMillis: settings.timeoutMillis,
    compression: settings.compression as ExporterConfig["compression"],
  };
  return settings.protocol === "http/json" ? new OtlpJsonTraceExporter(config) : new OtlpProtoTraceExporter(config);
}
