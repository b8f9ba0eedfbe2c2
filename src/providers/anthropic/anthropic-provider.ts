import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import type { AnthropicProviderConfig } from "../../config/schema.js";
import { parseSseStream } from "../../transport/sse-parser.js";
import { UpstreamClient } from "../../transport/upstream-client.js";
import type { Provider, UpstreamCall } from "../provider.js";
import { sendWithKey } from "../keys/key-pool.js";
import { createProviderKeys, type ProviderKeyDeps } from "../keys/provider-keys.js";
import { readAnthropicError } from "./errors.js";
import { toAnthropicRequest } from "./request.js";
import { fromAnthropicMessage } from "./response.js";
import { translateAnthropicStream } from "./stream.js";

/** The Messages endpoint, under `baseUrl` (which stops before the version segment). */
const messagesPath = "/v1/messages";

/**
 * The headers every request with `apiKey` carries, built once per key. Names are
 * lower-cased so a configured "X-Api-Key" replaces ours instead of travelling beside it.
 */
function keyHeaders(config: AnthropicProviderConfig, apiKey: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "anthropic-version": config.version,
  };
  if (apiKey !== undefined) headers["x-api-key"] = apiKey;
  if (config.beta.length > 0) headers["anthropic-beta"] = config.beta.join(",");
  for (const [key, value] of Object.entries(config.headers)) headers[key.toLowerCase()] = value;
  return headers;
}

/**
 * The Anthropic Messages API adapter: request.ts / response.ts / stream.ts translate,
 * one UpstreamClient (one undici Pool per origin) carries the call. The request headers
 * change only with the key, so they are built once per key, not per request.
 */
export function createAnthropicProvider(name: string, config: AnthropicProviderConfig, keyDeps?: ProviderKeyDeps): Provider {
  // First: a key file that cannot be read fails here, before a pool is opened.
  const keys = createProviderKeys(name, config, (apiKey) => keyHeaders(config, apiKey), keyDeps);
  const client = new UpstreamClient({
    provider: name,
    baseUrl: config.baseUrl,
    timeouts: config.timeouts,
    connections: config.connections,
    readError: readAnthropicError,
  });

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
    const json = await sendWithKey(keys, (headers) =>
      client.postForJson(messagesPath, payload, headers, call.signal, call.traceparent),
    );
    return fromAnthropicMessage(json, client);
  }

  async function* stream(request: CompleteRequest, call: UpstreamCall): AsyncGenerator<StreamCompleteResponse> {
    const payload = body(request, call, true);
    const response = await sendWithKey(keys, (headers) =>
      client.postForStream(messagesPath, payload, headers, call.signal, call.traceparent),
    );
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
    close: () => {
      keys.close();
      return client.close();
    },
  };
}
