import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";
import type { CallTelemetry } from "../telemetry/call-telemetry.js";
import { accessLogInterceptor } from "./access-log.js";

export interface InterceptorDeps {
  readonly logger: Logger;
  /** Spans and metrics of each call (the record the access log line is written from). */
  readonly telemetry?: CallTelemetry;
}

/**
 * The RPC chain, outermost first: the one place the order lives. connect-node and every
 * fast lane run this same list (src/app/route-table.ts), so a step added here applies to
 * every RPC over every protocol. Outermost first means it sees everything inner steps do
 * and throw: telemetry, then auth, admission and caching as those features land
 * (docs/architecture.md "Adding a cross-cutting step").
 */
export function createInterceptors(deps: InterceptorDeps): Interceptor[] {
  return [accessLogInterceptor(deps.logger, { telemetry: deps.telemetry })];
}
