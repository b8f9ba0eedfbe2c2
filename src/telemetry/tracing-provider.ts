import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import type { TracingSettings } from "./tracing-settings.js";

/**
 * One gateway's own tracer provider: its sampler, its resource, one batch processor in
 * front of `exporter`. Never registered globally (no setGlobalTracerProvider, no context
 * manager): spans are parented explicitly, so several gateways can run in one process and
 * nothing else in it is traced by accident.
 */
export function createTracerProvider(settings: TracingSettings, exporter: SpanExporter): BasicTracerProvider {
  return new BasicTracerProvider({
    sampler: createSampler(settings.sampler),
    resource: defaultResource().merge(resourceFromAttributes(settings.resource)),
    // A copy: the processor writes the OTEL_BSP_* values it reads from process.env into it.
    spanProcessors: [new BatchSpanProcessor(exporter, { ...settings.batch })],
  });
}

function createSampler({ name, ratio }: TracingSettings["sampler"]): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}
