import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";
import type { CallTelemetry } from "../telemetry/call-telemetry.js";
import type { Authenticator } from "../identity/authenticator.js";
import { accessLogInterceptor } from "./access-log.js";
import { authInterceptor } from "./auth.js";

export interface InterceptorDeps {
  readonly logger: Logger;
  /** Spans and metrics of each call (the record the access log line is written from). */
  readonly telemetry?: CallTelemetry;
  /** Who is calling; absent or not `enabled` (anonymous, no allow-list): no authentication step. */
  readonly authenticator?: Authenticator;
}

/**
 * The RPC chain, outermost first: the one place the order lives. connect-node and every
 * fast lane run this same list (src/app/route-table.ts), so a step added here applies to
 * every RPC over every protocol. Outermost first means it sees everything inner steps do
 * and throw: telemetry (the access log and its record), then authentication; admission and
 * caching as those features land (docs/architecture.md "Adding a cross-cutting step").
 */
export function createInterceptors(deps: InterceptorDeps): Interceptor[] {
  const chain = [accessLogInterceptor(deps.logger, { telemetry: deps.telemetry })];
  if (deps.authenticator?.enabled === true) chain.push(authInterceptor(deps.authenticator));
  return chain;
}
