import { Code, ConnectError } from "@connectrpc/connect";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import type { ModelRoute } from "../routing/model-catalog.js";
import type { CallRecord } from "../telemetry/call-record.js";

/** How far a call got over its plan: what RouteInfo reports and what the final error is built from. */
export interface CallProgress {
  attempts: number;
  lastError: unknown;
  /** Skipped because their circuit was open. */
  skippedOpen: number;
  /** Skipped at their `maxInFlight`. */
  skippedBusy: number;
  /** The call's telemetry record; undefined outside the interceptor chain (unit tests). */
  readonly record: CallRecord | undefined;
}

export function newCallProgress(record: CallRecord | undefined): CallProgress {
  return { attempts: 0, lastError: undefined, skippedOpen: 0, skippedBusy: 0, record };
}

/** The error when every candidate failed or was skipped: the last upstream error, or why none could be tried. */
export function exhaustedError(progress: CallProgress, requested: ModelRoute): ConnectError {
  if (progress.attempts === 0 && progress.skippedBusy > 0) {
    return gatewayError(
      Code.Unavailable,
      reasons.allDeploymentsBusy,
      `every deployment of model "${requested.alias}" is at its in-flight limit${progress.skippedOpen > 0 ? " or unavailable (circuit open)" : ""}; retry later`,
      { model: requested.alias },
    );
  }
  if (progress.attempts === 0 && progress.skippedOpen > 0) {
    return gatewayError(
      Code.Unavailable,
      reasons.allDeploymentsUnavailable,
      `every deployment of model "${requested.alias}" is unavailable (circuit open); retry later`,
      { model: requested.alias },
    );
  }
  return ConnectError.from(progress.lastError);
}
