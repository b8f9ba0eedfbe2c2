import type { CompleteRequest, CompleteResponse, StreamCompleteResponse } from "../../gen/sluice/v1/chat_service_pb.js";

/** The kinds of provider Sluice speaks to. */
export type ProviderType = "openai" | "anthropic" | "demo";

/** One upstream call: what the adapter needs beyond the caller's request. */
export interface UpstreamCall {
  /** The deployment's upstream model id (e.g. "gpt-4o-mini"). */
  readonly model: string;
  /**
   * Aborts when the caller cancels, the caller's deadline passes, or the server gives up
   * draining. Adapters pass it to undici so the upstream socket is torn down at once.
   */
  readonly signal: AbortSignal;
  /** Output limit to send when the request sets none (required by Anthropic). */
  readonly defaultMaxOutputTokens?: number | undefined;
  /**
   * W3C `traceparent` naming this attempt's span: sent to the provider so its own traces
   * join the caller's (always, whether or not spans are exported).
   */
  readonly traceparent?: string | undefined;
}

/**
 * A provider adapter: pure translators (proto ⇄ provider wire format) around one undici
 * call. The generated proto types are the only request/response model: adapters translate
 * straight between them and the provider's JSON, with no gateway model in between.
 *
 * Errors: every failure is thrown as a ConnectError; upstream failures as UpstreamError,
 * classified by src/errors/failure-table.ts. A request the provider cannot serve (a
 * setting it lacks) is rejected with INVALID_ARGUMENT naming the field and provider
 * before anything is sent.
 */
export interface Provider {
  /** The configured provider name, e.g. "openai" or "local". */
  readonly name: string;
  readonly type: ProviderType;

  /** One whole completion. `provider` in the response is this provider's name. */
  complete(request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse>;

  /**
   * A streamed completion. Yields exactly one `start` first and exactly one `done` last;
   * an upstream stream that ends before its terminal event (cut, `[DONE]`/`message_stop`
   * missing) throws UpstreamError(streamCut) instead of yielding `done`. Returning early
   * from the iterator (caller gone) aborts the upstream request.
   */
  stream(request: CompleteRequest, call: UpstreamCall): AsyncIterable<StreamCompleteResponse>;

  /** Closes pools and timers. */
  close(): Promise<void>;
}
