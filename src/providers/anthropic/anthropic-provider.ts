import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import type { AnthropicProviderConfig } from "../../config/schema.js";
import { parseSseStream } from "../../transport/sse-parser.js";
import { UpstreamClient } from "../../transport/upstream-client.js";
import type { Provider, UpstreamCall } from "../provider.js";
import { readAnthropicError } from "./errors.js";
import { toAnthropicRequest } from "./request.js";
import { fromAnthropicMessage } from "./response.js";
import { translateAnthropicStream } from "./stream.js";

/** The Messages endpoint, under `baseUrl` (which stops before the version segment). */
const messagesPath = "/v1/messages";

/**
 * The Anthropic Messages API adapter: request.ts / response.ts / stream.ts translate,
 * one UpstreamClient (one undici Pool per origin) carries the call. The request headers
 * never change, so they are built once here, not per request.
 */
export function createAnthropicProvider(name: string, config: AnthropicProviderConfig): Provider {
  const client = new UpstreamClient({
    provider: name,
    baseUrl: config.baseUrl,
    timeouts: config.timeouts,
    connections: config.connections,
    readError: readAnthropicError,
  });

  // Names are lower-cased so a configured "X-Api-Key" replaces ours instead of
  // travelling beside it.
  const fixedHeaders: Record<string, string> = {
    "content-type": "application/json",
    "anthropic-version": config.version,
  };
  if (config.apiKey !== undefined) fixedHeaders["x-api-key"] = config.apiKey;
  if (config.beta.length > 0) fixedHeaders["anthropic-beta"] = config.beta.join(",");
  for (const [key, value] of Object.entries(config.headers)) fixedHeaders[key.toLowerCase()] = value;

  function body(request: CompleteRequest, call: UpstreamCall, stream: boolean): string {
    // Throws INVALID_ARGUMENT before anything is sent.
    return JSON.stringify(
      toAnthropicRequest(request, {
        provider: name,
        model: call.model,
        defaultMaxOutputTokens: call.defaultMaxOutputTokens,
        stream,
      }),
    );
  }

  async function complete(request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse> {
    const payload = body(request, call, false);
    const json = await client.postForJson(messagesPath, payload, fixedHeaders, call.signal, call.traceparent);
    return fromAnthropicMessage(json, client);
  }

  async function* stream(request: CompleteRequest, call: UpstreamCall): AsyncGenerator<StreamCompleteResponse> {
    const payload = body(request, call, true);
    const response = await client.postForStream(messagesPath, payload, fixedHeaders, call.signal, call.traceparent);
    let complete = false;
    try {
      const events = parseSseStream(response.chunks(() => complete));
      for await (const event of translateAnthropicStream(events, client)) {
        if (event.event.case === "done") complete = true;
        yield event;
      }
    } catch (err) {
      throw client.streamFailure(err, call.signal);
    } finally {
      // The caller stopped early or the stream failed: destroying the unfinished body
      // aborts the undici request, so the upstream socket closes at once and no tokens
      // are generated for nobody (anthropic-provider.test.ts "cancel").
      if (!complete) response.destroy();
    }
  }

  return {
    name,
    type: "anthropic",
    complete,
    stream,
    close: () => client.close(),
  };
}
