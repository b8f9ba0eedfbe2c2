import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ChatService,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import type { ModelCatalog, Deployment } from "../routing/model-catalog.js";
import type { UpstreamCall } from "../providers/provider.js";
import { UpstreamError } from "../errors/gateway-error.js";
import { failures } from "../errors/failure-table.js";
import { validateCompleteRequest } from "./validate-request.js";

export interface ChatServiceDeps {
  readonly catalog: ModelCatalog;
}

/**
 * sluice.v1.ChatService: validates, resolves the alias, and hands the request to the
 * deployment's provider with the handler's signal (caller cancel ∧ deadline ∧ shutdown),
 * so an abort reaches the upstream socket at once.
 */
export function createChatService(deps: ChatServiceDeps): ServiceImpl<typeof ChatService> {
  const { catalog } = deps;

  function prepare(request: CompleteRequest, context: HandlerContext): { deployment: Deployment; call: UpstreamCall } {
    validateCompleteRequest(request);
    const route = catalog.resolve(request.model);
    // Routing strategies and fail-over pick among all deployments (resilience issue);
    // until then the primary serves.
    const deployment = route.deployments[0]!;
    return {
      deployment,
      call: {
        model: deployment.model,
        signal: context.signal,
        defaultMaxOutputTokens: deployment.maxOutputTokens,
      },
    };
  }

  return {
    async complete(request, context): Promise<CompleteResponse> {
      const { deployment, call } = prepare(request, context);
      return deployment.provider.complete(request, call);
    },

    async *streamComplete(request, context): AsyncGenerator<StreamCompleteResponse> {
      const { deployment, call } = prepare(request, context);
      yield* enforceStreamShape(deployment.provider.stream(request, call), deployment.provider.name);
    },
  };
}

/**
 * Holds every provider to the stream contract: `start` first, exactly one `done`, last.
 * A stream that ends without `done` is a failure, never a clean end (DESIGN §3) — even
 * if an adapter forgot to check its provider's terminal event.
 */
export async function* enforceStreamShape(
  events: AsyncIterable<StreamCompleteResponse>,
  provider: string,
): AsyncGenerator<StreamCompleteResponse> {
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
