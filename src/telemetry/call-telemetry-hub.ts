import type { ConnectError } from "@connectrpc/connect";
import type { CallRecord } from "./call-record.js";
import type {
  AttemptAnswer,
  AttemptObservation,
  AttemptOutcome,
  AttemptRole,
  AttemptTarget,
  CallEvent,
  CallTelemetry,
} from "./call-telemetry.js";

/** An attempt's span, as the tracing backend hands it to the hub. */
export interface AttemptSpan {
  /** W3C traceparent naming this span as the parent (sent to the provider), or undefined. */
  readonly traceparent: string | undefined;
  firstChunk(): void;
  answered(answer: AttemptAnswer): void;
  end(outcome: AttemptOutcome, error: unknown): void;
}

/** Spans: the server span per call, a client span per attempt (src/telemetry/tracing.ts). */
export interface TracingBackend {
  startServerSpan(record: CallRecord, header: Headers): void;
  startAttemptSpan(record: CallRecord, target: AttemptTarget, role: AttemptRole): AttemptSpan;
  event(record: CallRecord, event: CallEvent, deployment: string | undefined): void;
  endServerSpan(record: CallRecord, error: ConnectError | undefined): void;
}

/** What an ended attempt tells the metrics. */
export interface EndedAttempt {
  readonly target: AttemptTarget;
  readonly role: AttemptRole;
  readonly outcome: AttemptOutcome;
  readonly error: unknown;
  readonly durationMs: number;
}

/** Counters and histograms over calls and attempts (src/telemetry/metrics.ts). */
export interface MetricsBackend {
  callStarted(record: CallRecord): void;
  attemptEnded(record: CallRecord, attempt: EndedAttempt): void;
  event(record: CallRecord, event: CallEvent, deployment: string | undefined): void;
  callEnded(record: CallRecord, error: ConnectError | undefined): void;
}

export interface CallTelemetryDeps {
  readonly tracing: TracingBackend;
  readonly metrics?: MetricsBackend | undefined;
}

/**
 * The one CallTelemetry of the request path: keeps the record's upstream time (time with
 * at least one attempt in flight, so the gateway's own time is the rest) and feeds the
 * tracing and metrics backends.
 */
export function createCallTelemetry(deps: CallTelemetryDeps): CallTelemetry {
  const { tracing, metrics } = deps;
  return {
    begin(record, header) {
      tracing.startServerSpan(record, header);
      metrics?.callStarted(record);
    },
    attempt(record, target, role) {
      return new ObservedAttempt(record, target, role, tracing.startAttemptSpan(record, target, role), metrics);
    },
    event(record, event, deployment) {
      tracing.event(record, event, deployment);
      metrics?.event(record, event, deployment);
    },
    end(record, error) {
      tracing.endServerSpan(record, error);
      metrics?.callEnded(record, error);
    },
  };
}

class ObservedAttempt implements AttemptObservation {
  private readonly started = performance.now();
  private ended = false;
  readonly traceparent: string | undefined;

  constructor(
    private readonly record: CallRecord,
    private readonly target: AttemptTarget,
    private readonly role: AttemptRole,
    private readonly span: AttemptSpan,
    private readonly metrics: MetricsBackend | undefined,
  ) {
    this.traceparent = span.traceparent;
    if (record.attemptsInFlight++ === 0) record.upstreamSince = this.started;
  }

  firstChunk(): void {
    if (!this.ended) this.span.firstChunk();
  }

  answered(answer: AttemptAnswer): void {
    if (!this.ended) this.span.answered(answer);
  }

  end(outcome: AttemptOutcome, error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const now = performance.now();
    const record = this.record;
    if (--record.attemptsInFlight === 0) record.upstreamMs += now - record.upstreamSince;
    this.span.end(outcome, error);
    this.metrics?.attemptEnded(record, { target: this.target, role: this.role, outcome, error, durationMs: now - this.started });
  }
}
