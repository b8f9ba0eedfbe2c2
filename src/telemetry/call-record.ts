import { createContextKey } from "@connectrpc/connect";

/** USD per million tokens, from a deployment's `price` (config). */
export interface TokenPrice {
  readonly inputPerMillion: number;
  readonly outputPerMillion: number;
  /** Cached prompt tokens, when the provider bills them differently; else the input price. */
  readonly cachedInputPerMillion?: number | undefined;
}

/** The protocol a call arrived over, as metrics and logs label it. */
export type CallProtocol = "connect" | "grpc" | "grpc-web";

/**
 * What one RPC did, filled in as it runs by the layers that know each fact (the call
 * runner: route, attempts, tokens; the chat service: the alias) and read once at its end
 * by the access log, the metrics and the server span. Plain fields on one object per
 * call: no map, no allocation per fact.
 */
export class CallRecord {
  /** The caller's `x-request-id`, or one generated for the call. */
  requestId = "";
  /** Trace and span id of the call's server span (hex; "" when tracing is off). */
  traceId = "";
  spanId = "";
  /** The tracing backend's handle on the server span (opaque here). */
  span: unknown = undefined;

  /** The implementation started: the request was read and decoded (an error before it is the wire layer's). */
  handled = false;

  /** Who called: the tenant and the id of the credential it used ("" when anonymous). Never the credential itself. */
  tenant = "";
  keyId = "";
  /** Why authentication refused the call ("missing", "expired"…), for the operator's access line only. */
  authRefusal = "";

  /** The alias the caller asked for ("" until the request was read). */
  alias = "";
  /** Who answered: configured provider name, its type, deployment key ("provider/model"), upstream model id. */
  provider = "";
  providerType = "";
  deployment = "";
  upstreamModel = "";
  /** What the provider reported: the model that actually answered, the completion id. */
  responseModel = "";
  responseId = "";
  /** The answering deployment's prices, when configured. */
  price: TokenPrice | undefined = undefined;

  /** Upstream attempts made (retries, hedges, fail-overs included). */
  attempts = 0;
  /** The alias that answered when a model-level fallback was used. */
  fallback = "";
  hedged = false;
  degraded = false;
  /** How the response cache served the call: "hit", "miss", "coalesced", "bypass"; "" when not involved. */
  cacheStatus = "";

  finishReason = "";
  inputTokens = 0;
  outputTokens = 0;
  cachedInputTokens = 0;
  cacheWriteInputTokens = 0;
  reasoningTokens = 0;

  /**
   * Characters of text, reasoning and tool-call arguments streamed to the caller: what a
   * stream that ended without the provider's usage (cancelled, cut) is accounted by.
   */
  streamedChars = 0;

  /**
   * Run once when the call has ended (the access log's end of the call: unary answered or
   * failed, a stream done, failed or left by its caller), after every fact is in: where
   * admission settles what the call reserved.
   */
  onEnd: ((record: CallRecord, failed: boolean) => void) | undefined = undefined;

  /** From the call's start to the first chunk sent to the caller (streams). */
  ttftMs: number | undefined = undefined;
  /** Time during which at least one upstream attempt was in flight. */
  upstreamMs = 0;
  /** Attempts in flight now, and since when (performance.now()) there was at least one. */
  attemptsInFlight = 0;
  upstreamSince = 0;

  constructor(
    /** "sluice.v1.ChatService/Complete" */
    readonly rpc: string,
    readonly protocol: CallProtocol,
    readonly stream: boolean,
    /** performance.now() at the call's start. */
    readonly started: number,
  ) {}

  /** Cost in USD from the token counts and the answering deployment's price; undefined without a price. */
  costUsd(): number | undefined {
    const price = this.price;
    if (price === undefined) return undefined;
    const cached = Math.min(this.cachedInputTokens, this.inputTokens);
    const cachedPrice = price.cachedInputPerMillion ?? price.inputPerMillion;
    return (
      ((this.inputTokens - cached) * price.inputPerMillion + cached * cachedPrice + this.outputTokens * price.outputPerMillion) /
      1_000_000
    );
  }
}

/** Where the call's record travels from the interceptor to the implementation (HandlerContext.values). */
export const callRecordKey = createContextKey<CallRecord | undefined>(undefined, { description: "sluice call record" });

/** The protocol of a request, from its content type (what every lane and connect-node also dispatch on). */
export function protocolOf(contentType: string | null): CallProtocol {
  if (contentType === null || !contentType.startsWith("application/grpc")) return "connect";
  return contentType.startsWith("application/grpc-web") ? "grpc-web" : "grpc";
}
