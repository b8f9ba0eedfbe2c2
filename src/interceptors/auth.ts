import type { Interceptor } from "@connectrpc/connect";
import { unauthenticated } from "../api/access-errors.js";
import type { Authenticator } from "../identity/authenticator.js";
import { identityKey } from "../identity/identity.js";
import { peerKey } from "../identity/peer.js";
import { callRecordKey } from "../telemetry/call-record.js";

/**
 * Who is calling, before anything else runs: the caller's identity for every later step
 * (`identityKey`: the tenant's model list, routing, limits) and on the call's record
 * (tenant and key id on the access line, spans and metrics). A call without valid
 * credentials is refused with UNAUTHENTICATED before its request is looked at; why it
 * was refused goes only to the access line.
 */
export function authInterceptor(authenticator: Authenticator): Interceptor {
  return (next) => async (req) => {
    const result = authenticator.authenticate(req.header, req.contextValues.get(peerKey), req);
    // Awaited only when it is a promise (a JWT's first verification): the API-key path
    // stays free of a microtask per call.
    const outcome = result instanceof Promise ? await result : result;
    const record = req.contextValues.get(callRecordKey);
    const identity = outcome.identity;
    if (identity === undefined) {
      if (record !== undefined) {
        record.authRefusal = outcome.refusal ?? "";
        if (outcome.tenant !== undefined) record.tenant = outcome.tenant;
      }
      throw unauthenticated();
    }
    if (identity.tenant !== "") {
      req.contextValues.set(identityKey, identity);
      if (record !== undefined) {
        record.tenant = identity.tenant;
        record.keyId = identity.keyId;
      }
    }
    return next(req);
  };
}
