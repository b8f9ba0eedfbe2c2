import { Code, type ConnectError } from "@connectrpc/connect";
import { gatewayError } from "../errors/gateway-error.js";
import { reasons } from "../errors/reasons.js";
import { echoedModelName } from "../routing/model-catalog.js";

/**
 * The caller's tenant may not call this model: PERMISSION_DENIED (HTTP 403). Said alike
 * for an alias that exists and one that does not, and never naming what it may call
 * (ListModels lists that).
 */
export function modelNotAllowed(model: string): ConnectError {
  const shown = echoedModelName(model);
  return gatewayError(
    Code.PermissionDenied,
    reasons.modelNotAllowed,
    `model "${shown}" is not available to this caller (see ModelService.ListModels)`,
    { model: shown },
  );
}

/**
 * No valid credentials: UNAUTHENTICATED (HTTP 401), one message whatever was wrong —
 * missing, malformed, unknown, expired, disabled, or used from an address not allowed —
 * so a caller learns nothing about which keys or tenants exist.
 */
export function unauthenticated(): ConnectError {
  return gatewayError(
    Code.Unauthenticated,
    reasons.unauthenticated,
    "missing or invalid credentials: send 'authorization: Bearer API_KEY_OR_TOKEN' or 'x-api-key: API_KEY'",
  );
}
