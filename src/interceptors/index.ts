import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../telemetry/logger.js";
import { accessLogInterceptor } from "./access-log.js";

export interface InterceptorDeps {
  readonly logger: Logger;
}

/**
 * The RPC chain, outermost first. This list is the one place the order lives (DESIGN §7.3):
 * telemetry → auth → admission → cache as those features land.
 */
export function createInterceptors(deps: InterceptorDeps): Interceptor[] {
  return [accessLogInterceptor(deps.logger)];
}
