import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ChatService,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { ModelCatalog } from "../routing/model-catalog.js";
import type { CallPlanner } from "../routing/call-plan.js";
import type { ResilientCaller } from "../upstream/resilient-call.js";
import { UpstreamError } from "../errors/gateway-error.js";
import { failures } from "../errors/failure-table.js";
import { validateCompleteRequest } from "./validate-request.js";

export interface ChatServiceDeps {
  readonly catalog: ModelCatalog;
  readonly planner: CallPlanner;
  readonly caller: ResilientCaller;
}

/**
 * sluice.v1.ChatService: validates, resolves the alias, plans the deployments to try and
 * hands the call to the resilient caller with the handler's signal (caller cancel ∧
 * deadline ∧ shutdown), so an abort reaches the upstream socket at once.
 */
export function createChatService(deps: ChatServiceDeps): ServiceImpl<typeof ChatService> {
  const { catalog, planner, caller } = deps;

  function prepare(request: CompleteRequest, context: HandlerContext) {
    validateCompleteRequest(request);
    const route = catalog.resolve(request.model);
    // Request headers are read only when a conditional route asks for one.
    const candidates = planner.plan(route, request, (name) => context.requestHeader.get(name) ?? undefined);
    return { route, candidates };
  }

  return {
    async complete(request, context): Promise<CompleteResponse> {
      const { route, candidates } = prepare(request, context);
      return caller.complete(request, route, candidates, context);
    },

    // One generator per stream, not a wrapper around another: each layer is held for the
    // stream's life and costs a promise hop per event.
    streamComplete(request, context): AsyncGenerator<StreamCompleteResponse> {
      return enforceStreamShape(() => {
        const { route, candidates } = prepare(request, context);
        return { events: caller.stream(request, route, candidates, context), provider: route.alias };
      });
    },
  };
}

/**
 * Holds every provider to the stream contract: `start` first, exactly one `done`, last.
 * A stream that ends without `done` is a failure, never a clean end (DESIGN §3) — even
 * if an adapter forgot to check its provider's terminal event.
 */
export async function* enforceStreamShape(
  open: () => { events: AsyncIterable<StreamCompleteResponse>; provider: string },
): AsyncGenerator<StreamCompleteResponse> {
  // Opened on the first read, as a generator body runs: a bad request fails the stream, not the call to streamComplete.
  const { events, provider } = open();
  let started = false;
  let done = false;
  for await (const event of events) {
    const kind = event.event.case;
    if (done) throw contractBroken(provider, `an event (${kind}) after done`);
    if (!started) {
      if (kind !== "start") throw contractBroken(provider, `${kind ?? "an empty event"} before start`);
      started = true;
    } else if (kind === "start") {
      throw contractBroken(provider, "a second start");
    } else if (kind === "done") {
      done = true;
    }
    yield event;
  }
  if (!done) {
    throw new UpstreamError({
      failure: failures.streamCut,
      provider,
      message: `provider ${provider} stream ended without finishing`,
    });
  }
}

function contractBroken(provider: string, what: string): ConnectError {
  return new ConnectError(`provider ${provider} adapter sent ${what}`, Code.Internal);
}
