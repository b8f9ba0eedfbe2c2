import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  ChatService,
  CompleteRequest,
  CompleteResponse,
  StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { ModelCatalog } from "../routing/model-catalog.js";
import type { CallPlanner } from "../routing/call-plan.js";
import type { CallRunner } from "../resilience/call-runner.js";
import { enforceStreamShape } from "./stream-contract.js";
import { validateCompleteRequest } from "./validate-request.js";
import { callRecordKey } from "../telemetry/call-record.js";
import { identityKey } from "../identity/identity.js";
import { modelNotAllowed } from "./access-errors.js";
import type { Admission } from "../limits/admission.js";
import type { Candidate } from "../routing/candidate.js";
import type { CallCache } from "../cache/call-cache.js";

export interface ChatServiceDeps {
  readonly catalog: ModelCatalog;
  readonly planner: CallPlanner;
  readonly runner: CallRunner;
  /** Context-window check, limits and budgets; absent: none (tests of the services alone). */
  readonly admission?: Admission;
  /** The response cache, coalescing and idempotency keys; absent: none (tests of the services alone). */
  readonly cache?: CallCache;
}

/**
 * sluice.v1.ChatService: validates, resolves the alias, plans the deployments to try and
 * hands the call to the call runner with the handler's signal (caller cancel ∧
 * deadline ∧ shutdown), so an abort reaches the upstream socket at once.
 */
export function createChatService(deps: ChatServiceDeps): ServiceImpl<typeof ChatService> {
  const { catalog, planner, runner, admission, cache } = deps;

  function prepare(request: CompleteRequest, context: HandlerContext) {
    const record = context.values.get(callRecordKey);
    if (record !== undefined) record.handled = true;
    validateCompleteRequest(request);
    // Before resolving: an alias outside the tenant's list is refused alike whether it exists or not.
    const identity = context.values.get(identityKey);
    if (!identity.models.allows(request.model)) throw modelNotAllowed(request.model);
    const route = catalog.resolve(request.model);
    // Only a configured alias: metrics label calls by it, so it must come from a bounded set.
    if (record !== undefined) record.alias = route.alias;
    // Request headers are read only when a conditional route asks for one.
    const candidates = planner.plan(
      route,
      request,
      (name) => context.requestHeader.get(name) ?? undefined,
      identity.tenant === "" ? undefined : identity.tenant,
    );
    // Admission: only a valid call for an allowed, resolved alias counts against limits (a cache hit too).
    const admitted =
      admission === undefined
        ? candidates
        : admission.admit({ request, route, candidates, identity, record, responseHeader: context.responseHeader });
    // Last: the cache key is hashed only for a call admitted.
    const cachePlan = cache?.plan(request, route.alias, identity.tenant, context);
    return { route, candidates: admitted, cachePlan };
  }

  return {
    async complete(request, context): Promise<CompleteResponse> {
      const { route, candidates, cachePlan } = prepare(request, context);
      if (cachePlan === undefined) {
        return runner.complete(request, route, candidates instanceof Promise ? await candidates : candidates, context);
      }
      const admitted = candidates instanceof Promise ? await candidates : candidates;
      return cache!.complete(cachePlan, context, (flight) => runner.complete(request, route, admitted, flight));
    },

    // One generator per stream, not a wrapper around another: each layer is held for the
    // stream's life and costs a promise hop per event.
    streamComplete(request, context): AsyncIterable<StreamCompleteResponse> {
      return enforceStreamShape(() => {
        const { route, candidates, cachePlan } = prepare(request, context);
        if (cachePlan !== undefined) {
          const plan = cachePlan;
          const run = (admitted: readonly Candidate[]) =>
            cache!.stream(plan, context, (flight) => runner.stream(request, route, admitted, flight));
          return {
            events: candidates instanceof Promise ? admittedStream(candidates, run) : run(candidates),
            provider: route.alias,
          };
        }
        const events =
          candidates instanceof Promise
            ? admittedStream(candidates, (admitted) => runner.stream(request, route, admitted, context))
            : runner.stream(request, route, candidates, context);
        return { events, provider: route.alias };
      });
    },
  };
}

/** A stream that starts once admission has decided (the tokenizer's first load, a Redis round trip). */
async function* admittedStream(
  admitted: Promise<readonly Candidate[]>,
  stream: (candidates: readonly Candidate[]) => AsyncIterable<StreamCompleteResponse>,
): AsyncGenerator<StreamCompleteResponse> {
  yield* stream(await admitted);
}
