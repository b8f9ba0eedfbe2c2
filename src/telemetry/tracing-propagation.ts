import { TraceFlags } from "@opentelemetry/api";
import { RandomIdGenerator } from "@opentelemetry/sdk-trace-base";
import type { AttemptSpan, TracingBackend } from "./call-telemetry-hub.js";
import { callerTraceParent, formatTraceparent } from "./trace-context.js";

/**
 * Trace context without recording, for when export is off (the default): each call still
 * gets a trace id (the caller's, or a new one) and a span id, which the access log prints,
 * and each upstream attempt a span id of its own, sent to the provider as the parent in
 * `traceparent` — propagation never depends on export. Nothing else: no span objects, no
 * attributes, no SDK; about a header read, a regular expression and a few random ids per call.
 *
 * The caller's sampled flag is passed on as it came, so a provider (or a proxy before it)
 * that records what its callers sampled still records this trace; without a caller the
 * flag is 00, as Sluice records nothing. The provider's spans then name a parent (the
 * attempt) that no backend holds: they still join the caller's trace by its id.
 */
export function createPropagationOnly(): TracingBackend {
  const ids = new RandomIdGenerator();
  return {
    startServerSpan(record, header) {
      const caller = callerTraceParent(header);
      record.traceId = caller === null ? ids.generateTraceId() : caller.traceId;
      record.spanId = ids.generateSpanId();
      // The span slot holds only the trace flags to pass on.
      record.span = caller === null ? TraceFlags.NONE : caller.traceFlags & TraceFlags.SAMPLED;
    },
    startAttemptSpan(record) {
      const traceId = record.traceId === "" ? ids.generateTraceId() : record.traceId;
      const flags = typeof record.span === "number" ? record.span : TraceFlags.NONE;
      return new PropagatedAttempt(formatTraceparent(traceId, ids.generateSpanId(), flags));
    },
    event() {},
    endServerSpan() {},
  };
}

class PropagatedAttempt implements AttemptSpan {
  constructor(readonly traceparent: string) {}
  firstChunk(): void {}
  answered(): void {}
  end(): void {}
}
