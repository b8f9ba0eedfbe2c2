import { describe, expect, it } from "vitest";
import type { TelemetryConfig } from "../config/schema.js";
import { defaultTracesUrl } from "./otlp-exporter-from-env.js";
import { tracingSettings } from "./tracing-settings.js";

type TracingConfig = TelemetryConfig["tracing"];

const off: TracingConfig = { exporter: "none", protocol: "http/protobuf", sampleRatio: 1 };
const on: TracingConfig = { exporter: "otlp", protocol: "http/protobuf", sampleRatio: 1 };

describe("export on or off", () => {
  it("is off by default and on with exporter: otlp", () => {
    expect(tracingSettings(off, {}).export).toBeUndefined();
    expect(tracingSettings(on, {}).export).toBeDefined();
  });

  it("OTEL_TRACES_EXPORTER wins over the config file, both ways", () => {
    expect(tracingSettings(off, { OTEL_TRACES_EXPORTER: "otlp" }).export).toBeDefined();
    expect(tracingSettings(on, { OTEL_TRACES_EXPORTER: "none" }).export).toBeUndefined();
    // A list: none anywhere turns export off.
    expect(tracingSettings(on, { OTEL_TRACES_EXPORTER: "otlp,none" }).export).toBeUndefined();
  });

  it("OTEL_SDK_DISABLED=true turns export off whatever else says on", () => {
    expect(tracingSettings(on, { OTEL_SDK_DISABLED: "TRUE", OTEL_TRACES_EXPORTER: "otlp" }).export).toBeUndefined();
    expect(tracingSettings(on, { OTEL_SDK_DISABLED: "false" }).export).toBeDefined();
  });

  it("an empty variable is unset", () => {
    expect(tracingSettings(on, { OTEL_TRACES_EXPORTER: " " }).export).toBeDefined();
  });

  it("an exporter Sluice lacks is a problem, not a crash: ignored, otlp beside it still applies", () => {
    const alone = tracingSettings(on, { OTEL_TRACES_EXPORTER: "zipkin" });
    expect(alone.export).toBeUndefined();
    expect(alone.problems).toEqual([expect.stringContaining("OTEL_TRACES_EXPORTER: zipkin not supported")]);
    const beside = tracingSettings(off, { OTEL_TRACES_EXPORTER: "console, otlp" });
    expect(beside.export).toBeDefined();
    expect(beside.problems).toEqual([expect.stringContaining("console not supported")]);
  });
});

describe("where spans go", () => {
  it("defaults to the local collector's OTLP/HTTP port, protobuf", () => {
    expect(tracingSettings(on, {}).export).toMatchObject({ url: defaultTracesUrl, protocol: "http/protobuf" });
  });

  it("a configured endpoint is a base URL: /v1/traces is appended", () => {
    expect(tracingSettings({ ...on, endpoint: "http://collector:4318" }, {}).export?.url).toBe("http://collector:4318/v1/traces");
    expect(tracingSettings({ ...on, endpoint: "http://collector:4318/otlp/" }, {}).export?.url).toBe(
      "http://collector:4318/otlp/v1/traces",
    );
  });

  it("OTEL_EXPORTER_OTLP_ENDPOINT (base) wins over the file; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is) over both", () => {
    const file = { ...on, endpoint: "http://file:4318" };
    expect(tracingSettings(file, { OTEL_EXPORTER_OTLP_ENDPOINT: "https://env:4318" }).export?.url).toBe(
      "https://env:4318/v1/traces",
    );
    const both = { OTEL_EXPORTER_OTLP_ENDPOINT: "https://env:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://traces/x" };
    expect(tracingSettings(file, both).export?.url).toBe("https://traces/x");
  });

  it("an endpoint that is not an http(s) URL is a problem and the next source applies", () => {
    const settings = tracingSettings({ ...on, endpoint: "http://file:4318" }, { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" });
    expect(settings.export?.url).toBe("http://file:4318/v1/traces");
    expect(settings.problems).toEqual([expect.stringContaining("OTEL_EXPORTER_OTLP_ENDPOINT")]);
  });

  it("protocol: the signal's variable, then the generic one, then the file; grpc is a problem", () => {
    const json = { ...on, protocol: "http/json" } as const;
    expect(tracingSettings(json, {}).export?.protocol).toBe("http/json");
    expect(tracingSettings(json, { OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }).export?.protocol).toBe("http/protobuf");
    expect(
      tracingSettings(on, { OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" })
        .export?.protocol,
    ).toBe("http/json");
    const grpc = tracingSettings(json, { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(grpc.export?.protocol).toBe("http/json");
    expect(grpc.problems).toEqual([expect.stringContaining('OTEL_EXPORTER_OTLP_PROTOCOL="grpc"')]);
  });

  it("headers: percent-decoded, the signal's own over the generic ones; a malformed entry names its key, never a value", () => {
    const settings = tracingSettings(on, {
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20generic,x-tenant=a,broken",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "authorization=Bearer%20traces",
    });
    expect(settings.export?.headers).toEqual({ authorization: "Bearer traces", "x-tenant": "a" });
    expect(settings.problems).toEqual([expect.stringContaining('entry "broken" is not key=value')]);
    const bad = tracingSettings(on, { OTEL_EXPORTER_OTLP_HEADERS: "api-key=%E0%A4%A" });
    expect(bad.problems.join()).toContain('"api-key"');
    expect(bad.problems.join()).not.toContain("%E0");
  });

  it("timeout and compression from the environment; bad values are problems", () => {
    const settings = tracingSettings(on, { OTEL_EXPORTER_OTLP_TIMEOUT: "2500", OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "gzip" });
    expect(settings.export).toMatchObject({ timeoutMillis: 2500, compression: "gzip" });
    const bad = tracingSettings(on, { OTEL_EXPORTER_OTLP_TIMEOUT: "soon", OTEL_EXPORTER_OTLP_COMPRESSION: "zstd" });
    expect(bad.export).toMatchObject({ timeoutMillis: undefined, compression: undefined });
    expect(bad.problems).toHaveLength(2);
  });
});

describe("sampler", () => {
  it("defaults to parentbased_traceidratio with the configured ratio", () => {
    expect(tracingSettings({ ...on, sampleRatio: 0.25 }, {}).sampler).toEqual({ name: "parentbased_traceidratio", ratio: 0.25 });
  });

  it("OTEL_TRACES_SAMPLER and its argument win over sampleRatio", () => {
    const config = { ...on, sampleRatio: 0.25 };
    expect(tracingSettings(config, { OTEL_TRACES_SAMPLER: "always_on" }).sampler.name).toBe("always_on");
    expect(tracingSettings(config, { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.5" }).sampler).toEqual({
      name: "traceidratio",
      ratio: 0.5,
    });
    // Without an argument the file's ratio applies to the sampler the environment chose.
    expect(tracingSettings(config, { OTEL_TRACES_SAMPLER: "traceidratio" }).sampler.ratio).toBe(0.25);
  });

  it("an unknown sampler or an argument out of [0, 1] is a problem; the default applies", () => {
    const settings = tracingSettings({ ...on, sampleRatio: 0.25 }, { OTEL_TRACES_SAMPLER: "xray", OTEL_TRACES_SAMPLER_ARG: "2" });
    expect(settings.sampler).toEqual({ name: "parentbased_traceidratio", ratio: 0.25 });
    expect(settings.problems).toHaveLength(2);
  });
});

describe("resource and conventions", () => {
  it('service.name is "sluice" unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise', () => {
    expect(tracingSettings(on, {}).resource).toEqual({ "service.name": "sluice" });
    expect(
      tracingSettings(on, { OTEL_RESOURCE_ATTRIBUTES: "service.name=gw,deployment.environment.name=prod%20eu" }).resource,
    ).toEqual({ "service.name": "gw", "deployment.environment.name": "prod eu" });
    expect(
      tracingSettings(on, { OTEL_RESOURCE_ATTRIBUTES: "service.name=gw", OTEL_SERVICE_NAME: "edge" }).resource["service.name"],
    ).toBe("edge");
  });

  it("OTEL_SEMCONV_STABILITY_OPT_IN picks the RPC attribute set; rpc/dup wins over rpc", () => {
    expect(tracingSettings(on, {}).rpcSemconv).toBe("old");
    expect(tracingSettings(on, { OTEL_SEMCONV_STABILITY_OPT_IN: "http, rpc" }).rpcSemconv).toBe("stable");
    expect(tracingSettings(on, { OTEL_SEMCONV_STABILITY_OPT_IN: "rpc,rpc/dup" }).rpcSemconv).toBe("both");
    expect(tracingSettings(on, { OTEL_SEMCONV_STABILITY_OPT_IN: "gen_ai_latest_experimental" }).rpcSemconv).toBe("old");
  });

  it("batch processor settings from OTEL_BSP_*", () => {
    expect(tracingSettings(on, { OTEL_BSP_SCHEDULE_DELAY: "200", OTEL_BSP_MAX_QUEUE_SIZE: "4096" }).batch).toMatchObject({
      scheduledDelayMillis: 200,
      maxQueueSize: 4096,
    });
  });
});
