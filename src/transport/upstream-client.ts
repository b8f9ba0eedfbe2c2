import { Pool, type Dispatcher } from "undici";
import { ConnectError } from "@connectrpc/connect";
import { UpstreamError } from "../errors/gateway-error.js";
import {
  classifyHttpFailure,
  classifyNetworkError,
  describeUpstreamFailure,
  errorCode,
  failures,
} from "../errors/failure-table.js";
import { headerGetter, parseRetryAfterMs, parseShouldRetry } from "../errors/retry-after.js";
import { abortError } from "../errors/abort-error.js";
import type { ProviderTimeouts } from "../config/schema.js";
import { AnswerHandler } from "./answer-handler.js";
import { StreamAnswerHandler, type StreamAnswer, type StreamAnswerOwner } from "./stream-answer.js";

/** What a provider's error body says, read by the adapter (provider-specific shapes). */
export interface ProviderErrorFacts {
  /** OpenAI `error.code` / `error.type`, Anthropic `error.type`; lower-case. */
  readonly code?: string | undefined;
  /** The provider's message; shown to the caller only for request errors (4xx except auth). */
  readonly message?: string | undefined;
}

export interface UpstreamClientOptions {
  /** Configured provider name, for errors and metrics. */
  readonly provider: string;
  /** Base URL up to the API version, e.g. https://api.openai.com/v1. */
  readonly baseUrl: string;
  /** Query parameters added to every request (Azure `api-version`). */
  readonly query?: Readonly<Record<string, string>>;
  readonly timeouts: ProviderTimeouts;
  readonly connections: number;
  /** Reads the provider's error body (already JSON-parsed, or undefined). */
  readonly readError: (body: unknown) => ProviderErrorFacts;
}

/**
 * One keep-alive undici Pool per upstream origin, reused by every request to it. Sends a
 * JSON POST and returns the 2xx response with its body unread (so streams flow chunk by
 * chunk); turns every failure into an UpstreamError classified by the failure table.
 */
export class UpstreamClient implements StreamAnswerOwner {
  readonly provider: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly search: string;
  private readonly readError: UpstreamClientOptions["readError"];
  /** Finished streams whose leftover bytes are still being read (stream-answer.ts). */
  readonly draining = new Set<StreamAnswer>();
  private closing: Promise<void> | undefined;

  constructor(options: UpstreamClientOptions) {
    const url = new URL(options.baseUrl);
    this.provider = options.provider;
    this.basePath = url.pathname.replace(/\/+$/, "");
    const search = new URLSearchParams(url.search);
    for (const [key, value] of Object.entries(options.query ?? {})) search.set(key, value);
    const query = search.toString();
    this.search = query ? `?${query}` : "";
    this.readError = options.readError;
    this.pool = new Pool(url.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: options.timeouts.connectMs },
      headersTimeout: options.timeouts.headersMs,
      bodyTimeout: options.timeouts.bodyIdleMs,
    });
  }

  /**
   * POSTs `body` (already serialized JSON) to `path` under the base URL for a streaming
   * answer. Resolves when a 2xx answer's headers arrive, its body still flowing (read it
   * with `chunks()`); rejects with UpstreamError for any other status or socket failure, or
   * with the caller's cancel / deadline error when `signal` aborted. One undici `dispatch`
   * (stream-answer.ts).
   */
  postForStream(
    path: string,
    body: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    traceparent?: string | undefined,
  ): Promise<StreamAnswer> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    const handler = new StreamAnswerHandler(this, signal);
    this.pool.dispatch(
      { method: "POST", path: this.basePath + path + this.search, headers: withTraceparent(headers, traceparent), body },
      handler,
    );
    return handler.opened;
  }

  /** Reads a whole streaming answer as JSON (an error object sent where a stream was asked for). */
  async readJson(answer: StreamAnswer, signal: AbortSignal): Promise<unknown> {
    let text: string;
    try {
      text = await answer.text();
    } catch (err) {
      throw this.networkError(err, signal);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw this.malformed("response body is not JSON");
    }
  }

  /**
   * POSTs `body` and reads the whole 2xx answer as JSON (unary calls) in one undici
   * `dispatch`, without the Readable body and request wrapper `pool.request` builds per
   * call (a visible share of a unary call's CPU in profiles).
   */
  postForJson(
    path: string,
    body: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    traceparent?: string | undefined,
  ): Promise<unknown> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const handler = new JsonAnswerHandler(this, signal, resolve, reject);
      this.pool.dispatch(
        { method: "POST", path: this.basePath + path + this.search, headers: withTraceparent(headers, traceparent), body },
        handler,
      );
    });
  }

  /** The UpstreamError for a non-2xx answer (its body read as far as `maxErrorBodyBytes`, or broken off). */
  failedAnswer(status: number, headers: Dispatcher.ResponseData["headers"], text: string | undefined): UpstreamError {
    return this.httpFailure(status, headers, text);
  }

  /** An UpstreamError for a 2xx answer we cannot read. */
  malformed(what: string): UpstreamError {
    return new UpstreamError({
      failure: failures.malformed,
      provider: this.provider,
      message: `provider ${this.provider} sent an unreadable answer: ${what}`,
    });
  }

  /** An UpstreamError for a stream that ended before its terminal event. */
  streamCut(what: string): UpstreamError {
    return new UpstreamError({
      failure: failures.streamCut,
      provider: this.provider,
      message: `provider ${this.provider} stream ended early: ${what}`,
    });
  }

  /**
   * A failure while a stream's body flows. The caller's cancel wins; the adapter's own
   * errors (in-band errors, a missing terminal event, malformed chunks) pass as they are;
   * the body idle timeout stays a timeout; a socket lost mid-body is a cut stream.
   */
  streamFailure(err: unknown, signal: AbortSignal): ConnectError {
    if (signal.aborted) return abortError(signal);
    if (err instanceof ConnectError) return err;
    if (classifyNetworkError(err) === failures.timeout) return this.networkError(err, signal);
    return new UpstreamError({
      failure: failures.streamCut,
      provider: this.provider,
      message: `provider ${this.provider} stream ended early: connection lost (${errorCode(err) ?? (err as Error).name ?? "error"})`,
      cause: err,
    });
  }

  /** Maps a thrown socket/undici error, or the caller's abort, to a ConnectError. */
  networkError(err: unknown, signal: AbortSignal): ConnectError {
    if (signal.aborted) return abortError(signal);
    if (err instanceof ConnectError) return err;
    const failure = classifyNetworkError(err);
    const detail = (err as { code?: string }).code ?? (err as Error).name ?? "error";
    return new UpstreamError({
      failure,
      provider: this.provider,
      message: `provider ${this.provider} ${failure === failures.timeout ? "timed out" : "unreachable"} (${detail})`,
      cause: err,
    });
  }

  /** The UpstreamError for a non-2xx answer, from its status, headers and (bounded) body text. */
  private httpFailure(status: number, headers: Dispatcher.ResponseData["headers"], text: string | undefined): UpstreamError {
    const get = headerGetter(headers);
    let parsed: unknown;
    try {
      parsed = text !== undefined && text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const facts = parsed === undefined ? {} : this.readError(parsed);
    const failure = classifyHttpFailure({
      status,
      shouldRetry: parseShouldRetry(get),
      providerCode: facts.code,
      providerMessage: facts.message,
    });
    return new UpstreamError({
      failure,
      provider: this.provider,
      status,
      retryAfterMs: parseRetryAfterMs(get),
      message: describeUpstreamFailure(`provider ${this.provider} answered ${status}`, failure, this.provider, facts.message),
    });
  }

  /** Closes the pool; idempotent (shutdown and reload may both close a provider). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // A stalled leftover would hold the pool's close open until the body idle timeout.
      for (const body of this.draining) body.destroy();
      await this.pool.close();
    })();
    return this.closing;
  }
}

/** One unary answer read whole and parsed as JSON (answer-handler.ts does the rest). */
class JsonAnswerHandler extends AnswerHandler {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly client: UpstreamClient,
    signal: AbortSignal,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (reason: unknown) => void,
  ) {
    super(client, signal);
  }

  protected answerStarted(): void {}

  protected answerData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  protected answerEnded(): void {
    const { chunks } = this;
    // Most answers arrive in one chunk: no copy then.
    const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.size)).toString("utf8");
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return this.reject(this.client.malformed("response body is not JSON"));
    }
    this.resolve(value);
  }

  protected answerBroke(err: Error): void {
    this.reject(this.client.networkError(err, this.signal));
  }

  protected failed(error: ConnectError): void {
    this.reject(error);
  }
}

/**
 * A provider's fixed headers plus this attempt's `traceparent`. undici takes headers as a
 * flat [name, value, …] array too: one small array per request instead of a copied object.
 */
function withTraceparent(headers: Record<string, string>, traceparent: string | undefined): Record<string, string> | string[] {
  if (traceparent === undefined) return headers;
  const flat: string[] = ["traceparent", traceparent];
  for (const name in headers) flat.push(name, headers[name]!);
  return flat;
}
