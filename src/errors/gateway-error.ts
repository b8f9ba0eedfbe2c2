import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { boundError, errorLimits } from "./bounded-error.js";
import { cutText } from "./bounded-text.js";
import type { FailureClass } from "./failure-table.js";
import type { Reason } from "./reasons.js";
import { reasons } from "./reasons.js";

/** ErrorInfo.domain of every error Sluice raises. */
export const errorDomain = "sluice";

export type OutgoingDetail = NonNullable<ConstructorParameters<typeof ConnectError>[3]>[number];

/** One field of a request that is wrong (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason?: Reason;
}

/** An ErrorInfo detail (domain "sluice"). */
export function errorInfo(reason: Reason, metadata: Record<string, string> = {}): OutgoingDetail {
  return { desc: ErrorInfoSchema, value: { reason, domain: errorDomain, metadata } };
}

/** A RetryInfo detail: retry after `delayMs`. */
export function retryInfo(delayMs: number): OutgoingDetail {
  const seconds = Math.floor(delayMs / 1000);
  const retryDelay = create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((delayMs - seconds * 1000) * 1e6),
  });
  return { desc: RetryInfoSchema, value: { retryDelay } };
}

/**
 * The request is malformed: INVALID_ARGUMENT with a google.rpc.BadRequest naming each bad
 * field, so a caller can point at the exact field — the first `errorLimits.maxViolations`
 * of them. `total` is how many were found when the caller recorded only the first few; the
 * message then says how many more there were ("… and 412 more"). Bounded whatever the input.
 */
export function invalidArgument(violations: readonly FieldViolation[], total = violations.length): ConnectError {
  const kept = violations.length > errorLimits.maxViolations ? violations.slice(0, errorLimits.maxViolations) : violations;
  const count = Math.max(total, kept.length);
  return boundError(
    new ConnectError(violationsMessage(kept, count), Code.InvalidArgument, undefined, [
      errorInfo(kept[0]?.reason ?? reasons.invalidField),
      {
        desc: BadRequestSchema,
        value: {
          fieldViolations: kept.map((v) => ({
            field: cutText(v.field, errorLimits.maxFieldLength),
            description: cutText(v.description, errorLimits.maxDescriptionLength),
            reason: v.reason ?? reasons.invalidField,
          })),
        },
      },
    ]),
  );
}

/** Longest list of violations in an INVALID_ARGUMENT message (the rest are counted). */
const maxListedLength = 768;

function violationsMessage(kept: readonly FieldViolation[], count: number): string {
  const describe = (v: FieldViolation): string =>
    `${cutText(v.field, errorLimits.maxFieldLength)}: ${cutText(v.description, errorLimits.maxDescriptionLength)}`;
  if (count === 1 && kept.length === 1) return describe(kept[0]!);
  let message = `${count} invalid fields: `;
  let listed = 0;
  for (const v of kept) {
    const item = describe(v);
    if (listed > 0 && message.length + 2 + item.length > maxListedLength) break;
    message += listed > 0 ? `; ${item}` : item;
    listed++;
  }
  if (count > listed) message += `${listed > 0 ? "; " : ""}… and ${count - listed} more`;
  return message;
}

/** A gateway error with a reason, e.g. NOT_FOUND / MODEL_NOT_FOUND. */
export function gatewayError(code: Code, reason: Reason, message: string, metadata?: Record<string, string>): ConnectError {
  // Bounded here, at the source, so the message is the same on every path (connect-node too).
  return new ConnectError(cutText(message, errorLimits.maxMessageLength), code, undefined, [errorInfo(reason, metadata)]);
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
    // A provider's message can be long: bounded here, as gatewayError bounds the gateway's own.
    super(cutText(init.message, errorLimits.maxMessageLength), init.failure.code, undefined, details, init.cause);
    // The name stays "ConnectError": ConnectError's own instanceof check accepts only its
    // exact prototype or that name, and connect-node passes thrown errors through
    // ConnectError.from — a renamed subclass would reach the caller as UNKNOWN.
    this.failure = init.failure;
    this.provider = init.provider;
    this.status = init.status;
    this.retryAfterMs = init.retryAfterMs;
  }
}
