import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { FailureClass } from "./failure-table.js";
import type { Reason } from "./reasons.js";
import { reasons } from "./reasons.js";

/** ErrorInfo.domain of every error Sluice raises. */
export const errorDomain = "sluice";

type OutgoingDetail = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];

/** One field of a request that is wrong (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason?: Reason;
}

function errorInfo(reason: Reason, metadata: Record<string, string> = {}): OutgoingDetail {
  return { desc: ErrorInfoSchema, value: { reason, domain: errorDomain, metadata } };
}

function retryInfo(delayMs: number): OutgoingDetail {
  const seconds = Math.floor(delayMs / 1000);
  const retryDelay = create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((delayMs - seconds * 1000) * 1e6),
  });
  return { desc: RetryInfoSchema, value: { retryDelay } };
}

/**
 * The request is malformed: INVALID_ARGUMENT with a google.rpc.BadRequest naming each
 * bad field, so a caller can point at the exact field.
 */
export function invalidArgument(violations: readonly FieldViolation[]): ConnectError {
  const first = violations[0];
  const message =
    violations.length === 1 && first
      ? `${first.field}: ${first.description}`
      : `${violations.length} invalid fields: ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`;
  return new ConnectError(message, Code.InvalidArgument, undefined, [
    errorInfo(first?.reason ?? reasons.invalidField),
    {
      desc: BadRequestSchema,
      value: {
        fieldViolations: violations.map((v) => ({
          field: v.field,
          description: v.description,
          reason: v.reason ?? reasons.invalidField,
        })),
      },
    },
  ]);
}

/** A gateway error with a reason, e.g. NOT_FOUND / MODEL_NOT_FOUND. */
export function gatewayError(code: Code, reason: Reason, message: string, metadata?: Record<string, string>): ConnectError {
  return new ConnectError(message, code, undefined, [errorInfo(reason, metadata)]);
}

/** What an adapter knows about an upstream failure. */
export interface UpstreamFailureInit {
  readonly failure: FailureClass;
  /** Configured provider name, e.g. "openai". */
  readonly provider: string;
  /** Caller-safe message: never the prompt, never a key. */
  readonly message: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

/**
 * An upstream failure, classified by the failure table. It is a ConnectError, so it
 * reaches the caller as is; retry and fallback read `failure` and `retryAfterMs`.
 */
export class UpstreamError extends ConnectError {
  readonly failure: FailureClass;
  readonly provider: string;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;

  /** ConnectError's static check would accept every ConnectError here; look at the real chain. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && Object.prototype.isPrototypeOf.call(UpstreamError.prototype, value);
  }

  constructor(init: UpstreamFailureInit) {
    const metadata: Record<string, string> = { provider: init.provider };
    if (init.status !== undefined) metadata["upstream_status"] = String(init.status);
    const details: OutgoingDetail[] = [errorInfo(init.failure.reason, metadata)];
    if (init.retryAfterMs !== undefined) details.push(retryInfo(init.retryAfterMs));
    super(init.message, init.failure.code, undefined, details, init.cause);
    // The name stays "ConnectError": ConnectError's own instanceof check accepts only its
    // exact prototype or that name, and connect-node passes thrown errors through
    // ConnectError.from — a renamed subclass would reach the caller as UNKNOWN.
    this.failure = init.failure;
    this.provider = init.provider;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
  }
}
