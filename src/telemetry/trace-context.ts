import { type Context, ROOT_CONTEXT, type SpanContext, type TextMapGetter, TraceFlags } from "@opentelemetry/api";
import { parseTraceParent, TRACE_PARENT_HEADER, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";

/**
 * W3C Trace Context (traceparent, tracestate) and Baggage in and out, over the request
 * headers every protocol and lane hands the interceptors: gRPC metadata, gRPC-Web and
 * Connect headers all arrive as one fetch `Headers`.
 */

/** Reads fetch Headers for the propagators. A repeated header arrives joined ("a, b"), which W3C treats as invalid. */
const headersGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

const traceContext = new W3CTraceContextPropagator();
const baggage = new W3CBaggagePropagator();

/**
 * The caller's context: its span (traceparent, with tracestate) as the remote parent, and
 * its baggage. ROOT_CONTEXT when the caller sent no valid traceparent.
 */
export function extractCallerContext(header: Headers): Context {
  return baggage.extract(traceContext.extract(ROOT_CONTEXT, header, headersGetter), header, headersGetter);
}

/**
 * Only the caller's trace id and sampled flag, for when nothing is recorded: one header read
 * and the propagator's own parser, no context objects.
 */
export function callerTraceParent(header: Headers): Pick<SpanContext, "traceId" | "traceFlags"> | null {
  const value = header.get(TRACE_PARENT_HEADER);
  return value === null ? null : parseTraceParent(value);
}

/** `00-<trace id>-<span id>-<flags>`: the traceparent naming a span as the parent. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${(traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? "01" : "00"}`;
}
