import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import type { OpenAIProviderConfig } from "../../config/schema.js";
import { parseSseStream } from "../../transport/sse-parser.js";
import { UpstreamClient } from "../../transport/upstream-client.js";
import type { Provider, UpstreamCall } from "../provider.js";
import { sendWithKey } from "../keys/key-pool.js";
import { createProviderKeys, type ProviderKeyDeps } from "../keys/provider-keys.js";
import { inBandError, isErrorPayload, readOpenAIError } from "./errors.js";
import { buildChatRequest } from "./request.js";
import type { MaxTokensField } from "./wire.js";
import { translateCompletion } from "./response.js";
import { translateChatStream } from "./stream.js";

/** Adapter settings beyond the provider's configuration block. */
export interface OpenAIProviderOptions {
  /**
   * The field that carries `max_output_tokens` (request.ts MaxTokensField explains the
   * choice). Default `max_completion_tokens`; `max_tokens` for servers that only know it.
   */
  readonly maxTokensField?: MaxTokensField;
  /** Logger and test seams for the provider's keys (provider-keys.ts). */
  readonly keys?: ProviderKeyDeps;
}

type Headers = Readonly<Record<string, string>>;

/** What a request with one key sends: the unary and the streaming headers, built once per key. */
interface KeyHeaders {
  readonly unary: Headers;
  readonly stream: Headers;
}

/**
 * The headers every request with `apiKey` carries, built once per key. Names are
 * lower-cased so a configured `Authorization` cannot end up beside ours as a second header.
 * The key goes only here — never into a URL, an error or a log line.
 */
function providerHeaders(config: OpenAIProviderConfig, apiKey: string | undefined, accept: string): Headers {
  const headers: Record<string, string> = { "content-type": "application/json", accept };
  for (const [key, value] of Object.entries(config.headers)) headers[key.toLowerCase()] = value;
  if (apiKey !== undefined) {
    // Azure OpenAI takes the key in `api-key`; everyone else as a bearer token.
    if (config.apiKeyHeader !== undefined) headers[config.apiKeyHeader.toLowerCase()] = apiKey;
    else headers["authorization"] = `Bearer ${apiKey}`;
  }
  return Object.freeze(headers);
}

function isJsonContentType(value: string | string[] | undefined): boolean {
  const type = Array.isArray(value) ? value[0] : value;
  return type?.startsWith("application/json") === true;
}

/**
 * OpenAI Chat Completions — and any server that speaks it (Azure OpenAI, vLLM, llama.cpp,
 * Ollama, OpenRouter, …) — behind the Provider contract: POST `{baseUrl}/chat/completions`,
 * unary or SSE. Translation lives in request.ts / response.ts / stream.ts; this file only
 * wires them to the one undici call and maps what can go wrong while the body flows.
 */
export function createOpenAIProvider(name: string, config: OpenAIProviderConfig, options: OpenAIProviderOptions = {}): Provider {
  // First: a key file that cannot be read fails here, before a pool is opened.
  const keys = createProviderKeys<KeyHeaders>(
    name,
    config,
    (apiKey) => ({
      unary: providerHeaders(config, apiKey, "application/json"),
      stream: providerHeaders(config, apiKey, "text/event-stream"),
    }),
    options.keys,
  );
  const client = new UpstreamClient({
    provider: name,
    baseUrl: config.baseUrl,
    query: config.query,
    timeouts: config.timeouts,
    connections: config.connections,
    readError: readOpenAIError,
  });
  const path = "/chat/completions";

  /** Translates and serializes once; throws INVALID_ARGUMENT before anything is sent. */
  function encode(request: CompleteRequest, call: UpstreamCall, stream: boolean): string {
    return JSON.stringify(
      buildChatRequest(request, { model: call.model, stream, provider: name, maxTokensField: options.maxTokensField }),
    );
  }

  return {
    name,
    type: "openai",

    async complete(request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse> {
      const body = encode(request, call, false);
      const json = await sendWithKey(keys, (headers) =>
        client.postForJson(path, body, headers.unary, call.signal, call.traceparent),
      );
      return translateCompletion(json, call, client);
    },

    async *stream(request: CompleteRequest, call: UpstreamCall): AsyncGenerator<StreamCompleteResponse> {
      const body = encode(request, call, true);
      const response = await sendWithKey(keys, (headers) =>
        client.postForStream(path, body, headers.stream, call.signal, call.traceparent),
      );
      let complete = false;
      try {
        if (isJsonContentType(response.headers["content-type"])) {
          // An error object answered with 200 instead of a stream (some compatible servers).
          const json = await client.readJson(response, call.signal);
          throw isErrorPayload(json)
            ? inBandError(name, json)
            : client.malformed("a JSON body where an event stream was asked for");
        }
        const events = parseSseStream(response.chunks(() => complete));
        for await (const event of translateChatStream(events, { failures: client, model: call.model })) {
          if (event.event.case === "done") complete = true;
          yield event;
        }
      } catch (err) {
        throw client.streamFailure(err, call.signal);
      } finally {
        // Returning early (the caller is gone) or failing: tear the upstream request down.
        if (!complete) response.destroy();
      }
    },

    close: () => {
      keys.close();
      return client.close();
    },
  };
}
