import { ConnectError } from "@connectrpc/connect";
import type {
  CompleteRequest,
  CompleteResponse,
  StreamCompleteResponse,
} from "../../../gen/sluice/v1/chat_service_pb.js";
import type { OpenAIProviderConfig } from "../../config/schema.js";
import { classifyNetworkError, errorCode, failures } from "../../errors/failure-table.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { parseSseStream } from "../../upstream/sse-parser.js";
import { abortError, UpstreamClient } from "../../upstream/upstream-client.js";
import type { Provider, UpstreamCall } from "../provider.js";
import { inBandError, isErrorPayload, readOpenAIError } from "./errors.js";
import { keepAliveBody, type DestroyableBody } from "./keep-alive-body.js";
import { buildChatRequest, type MaxTokensField } from "./request.js";
import { translateCompletion } from "./response.js";
import { translateChatStream } from "./stream.js";

/** Adapter settings beyond the provider's configuration block. */
export interface OpenAIProviderOptions {
  /**
   * The field that carries `max_output_tokens` (request.ts MaxTokensField explains the
   * choice). Default `max_completion_tokens`; `max_tokens` for servers that only know it.
   */
  readonly maxTokensField?: MaxTokensField;
}

type Headers = Readonly<Record<string, string>>;

/**
 * The headers every request to this provider carries, built once. Names are lower-cased
 * so a configured `Authorization` cannot end up beside ours as a second header. The key
 * goes only here — never into a URL, an error or a log line.
 */
function providerHeaders(config: OpenAIProviderConfig, accept: string): Headers {
  const headers: Record<string, string> = { "content-type": "application/json", accept };
  for (const [key, value] of Object.entries(config.headers)) headers[key.toLowerCase()] = value;
  if (config.apiKey !== undefined) {
    // Azure OpenAI takes the key in `api-key`; everyone else as a bearer token.
    if (config.apiKeyHeader !== undefined) headers[config.apiKeyHeader.toLowerCase()] = config.apiKey;
    else headers["authorization"] = `Bearer ${config.apiKey}`;
  }
  return Object.freeze(headers);
}

/** Adds the call's headers (traceparent); the provider's own win, so no call header can replace the key. */
function withCallHeaders(base: Headers, extra: UpstreamCall["headers"]): Headers {
  if (extra === undefined) return base;
  let merged: Record<string, string> | undefined;
  for (const key in extra) {
    merged ??= {};
    merged[key.toLowerCase()] = extra[key]!;
  }
  return merged === undefined ? base : Object.assign(merged, base);
}

function isJsonContentType(value: string | string[] | undefined): boolean {
  const type = Array.isArray(value) ? value[0] : value;
  return type !== undefined && type.startsWith("application/json");
}

/**
 * OpenAI Chat Completions — and any server that speaks it (Azure OpenAI, vLLM, llama.cpp,
 * Ollama, OpenRouter, …) — behind the Provider contract: POST `{baseUrl}/chat/completions`,
 * unary or SSE. Translation lives in request.ts / response.ts / stream.ts; this file only
 * wires them to the one undici call and maps what can go wrong while the body flows.
 */
export function createOpenAIProvider(
  name: string,
  config: OpenAIProviderConfig,
  options: OpenAIProviderOptions = {},
): Provider {
  const client = new UpstreamClient({
    provider: name,
    baseUrl: config.baseUrl,
    query: config.query,
    timeouts: config.timeouts,
    connections: config.connections,
    readError: readOpenAIError,
  });
  const unaryHeaders = providerHeaders(config, "application/json");
  const streamHeaders = providerHeaders(config, "text/event-stream");
  const path = "/chat/completions";
  /** Finished streams whose leftover bytes are still being read (keep-alive-body.ts). */
  const draining = new Set<DestroyableBody>();
  let closing: Promise<void> | undefined;

  /** Translates and serializes once; throws INVALID_ARGUMENT before anything is sent. */
  function encode(request: CompleteRequest, call: UpstreamCall, stream: boolean): string {
    return JSON.stringify(
      buildChatRequest(request, { model: call.model, stream, provider: name, maxTokensField: options.maxTokensField }),
    );
  }

  /**
   * A failure while the stream's body flows. The caller's cancel wins; our own errors
   * (in-band errors, a missing [DONE], malformed chunks) pass as they are; the body idle
   * timeout stays a timeout; a socket lost mid-body is a cut stream.
   */
  function streamFailure(err: unknown, signal: AbortSignal): ConnectError {
    if (signal.aborted) return abortError(signal);
    if (err instanceof ConnectError) return err;
    if (classifyNetworkError(err) === failures.timeout) return client.networkError(err, signal);
    return new UpstreamError({
      failure: failures.streamCut,
      provider: name,
      message: `provider ${name} stream ended early: connection lost (${errorCode(err) ?? (err as Error).name ?? "error"})`,
      cause: err,
    });
  }

  return {
    name,
    type: "openai",

    async complete(request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse> {
      const body = encode(request, call, false);
      const response = await client.postJson(path, body, withCallHeaders(unaryHeaders, call.headers), call.signal);
      const json = await client.readJson(response, call.signal);
      return translateCompletion(json, call, client);
    },

    async *stream(request: CompleteRequest, call: UpstreamCall): AsyncGenerator<StreamCompleteResponse> {
      const body = encode(request, call, true);
      const response = await client.postJson(path, body, withCallHeaders(streamHeaders, call.headers), call.signal);
      let complete = false;
      try {
        if (isJsonContentType(response.headers["content-type"])) {
          // An error object answered with 200 instead of a stream (some compatible servers).
          const json = await client.readJson(response, call.signal);
          throw isErrorPayload(json)
            ? inBandError(name, json)
            : client.malformed("a JSON body where an event stream was asked for");
        }
        const events = parseSseStream(keepAliveBody(response.body, () => complete, draining));
        for await (const event of translateChatStream(events, { failures: client, model: call.model })) {
          if (event.event.case === "done") complete = true;
          yield event;
        }
      } catch (err) {
        throw streamFailure(err, call.signal);
      } finally {
        // Returning early (the caller is gone) or failing: tear the upstream request down.
        if (!complete) response.body.destroy();
      }
    },

    close() {
      // Idempotent: shutdown and config reload may both close a provider.
      closing ??= (async () => {
        // A stalled leftover would hold the pool's close open until the body idle timeout.
        for (const body of draining) body.destroy();
        await client.close();
      })();
      return closing;
    },
  };
}
