import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import type { ConnectError } from "@connectrpc/connect";
import type { CallRecord } from "./call-record.js";
import type { AttemptAnswer, AttemptOutcome } from "./call-telemetry.js";
import type { AttemptSpan, TracingBackend } from "./call-telemetry-hub.js";
import { errorType } from "./error-type.js";
import { callEventName, general, genAi, type RpcSemconv, sluice } from "./gen-ai-semconv.js";
import { extractCallerContext, formatTraceparent } from "./trace-context.js";
import {
  createAttemptStarts,
  createServerStartAttributes,
  isServerFault,
  setAnswerAttributes,
  setRecordAttributes,
  setRoleAttributes,
  setRpcStatus,
} from "./tracing-attributes.js";

/**
 * Recorded spans, with the OpenTelemetry SDK's tracer: a SERVER span per call, child of
 * the caller's span (traceparent), and a CLIENT span per upstream attempt, child of the
 * server span, whose traceparent the provider receives. Parents are passed explicitly —
 * no context manager, no AsyncLocalStorage. A span the sampler drops is the SDK's
 * non-recording span: it still has ids (propagated upstream, logged) and every attribute
 * call below is skipped for it.
 */
export function createRecordedSpans(tracer: Tracer, semconv: RpcSemconv): TracingBackend {
  const serverStart = createServerStartAttributes(semconv);
  const attemptStart = createAttemptStarts();

  return {
    startServerSpan(record, header) {
      const span = tracer.startSpan(
        record.rpc,
        { kind: SpanKind.SERVER, attributes: serverStart(record.rpc, record.protocol) },
        extractCallerContext(header),
      );
      const context = span.spanContext();
      record.span = span;
      record.traceId = context.traceId;
      record.spanId = context.spanId;
    },

    startAttemptSpan(record, target, role) {
      const server = record.span as Span | undefined;
      const start = attemptStart(target, record.stream);
      const span = tracer.startSpan(
        start.name,
        { kind: SpanKind.CLIENT, attributes: start.attributes },
        server === undefined ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, server),
      );
      if (span.isRecording()) setRoleAttributes(span, record, role);
      return new RecordedAttempt(span);
    },

    event(record, event, deployment) {
      const span = record.span as Span | undefined;
      if (span === undefined || !span.isRecording()) return;
      span.addEvent(callEventName(event), deployment === undefined ? undefined : { [sluice.deployment]: deployment });
    },

    endServerSpan(record, error) {
      const span = record.span as Span | undefined;
      if (span === undefined) return;
      record.span = undefined;
      if (span.isRecording()) setServerEnd(span, record, error, semconv);
      span.end();
    },
  };
}

function setServerEnd(span: Span, record: CallRecord, error: ConnectError | undefined, semconv: RpcSemconv): void {
  setRpcStatus(span, record.protocol, error, semconv);
  setRecordAttributes(span, record);
  if (error === undefined) return;
  span.setAttribute(general.errorType, errorType(error));
  if (isServerFault(error)) span.setStatus({ code: SpanStatusCode.ERROR });
}

class RecordedAttempt implements AttemptSpan {
  readonly traceparent: string;
  private readonly started = performance.now();

  constructor(private readonly span: Span) {
    const context = span.spanContext();
    this.traceparent = formatTraceparent(context.traceId, context.spanId, context.traceFlags);
  }

  firstChunk(): void {
    if (this.span.isRecording())
      this.span.setAttribute(genAi.responseTimeToFirstChunk, (performance.now() - this.started) / 1000);
  }

  answered(answer: AttemptAnswer): void {
    if (this.span.isRecording()) setAnswerAttributes(this.span, answer);
  }

  end(outcome: AttemptOutcome, error: unknown): void {
    const span = this.span;
    if (span.isRecording()) {
      // A cancelled attempt (the caller left) or a hedge race's loser did not fail: no error
      // status, only the outcome. "ok" goes without saying.
      if (outcome !== "ok") span.setAttribute(sluice.attemptOutcome, outcome);
      if (outcome === "error") {
        span.setAttribute(general.errorType, errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    span.end();
  }
}
