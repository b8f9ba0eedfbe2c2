/**
 * Every span and attribute name Sluice's traces use, in one place, and which version of
 * the OpenTelemetry semantic conventions they follow. The GenAI conventions are still in
 * development and change between releases (gen_ai.system became gen_ai.provider.name in
 * 1.37; the newer semantic-conventions-genai repository already renames
 * cache_creation.input_tokens to cache_write.input_tokens): when they change, this file
 * and docs/tracing.md change, nothing else.
 *
 * Names are string literals rather than imports from @opentelemetry/semantic-conventions:
 * its GenAI and deprecated RPC names live in the "incubating" entry point, which may drop
 * them in any minor release.
 */

/** The semantic conventions release the names below were checked against. */
export const semconvVersion = "1.45.0";

/** The GenAI client span (gen-ai-spans.md, semconv 1.45.0): one per upstream attempt. */
export const genAi = {
  operationName: "gen_ai.operation.name",
  providerName: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  requestStream: "gen_ai.request.stream",
  responseModel: "gen_ai.response.model",
  responseId: "gen_ai.response.id",
  responseFinishReasons: "gen_ai.response.finish_reasons",
  /** Seconds from the request's start to the first chunk of a streamed answer. */
  responseTimeToFirstChunk: "gen_ai.response.time_to_first_chunk",
  usageInputTokens: "gen_ai.usage.input_tokens",
  usageOutputTokens: "gen_ai.usage.output_tokens",
  usageCacheReadInputTokens: "gen_ai.usage.cache_read.input_tokens",
  usageCacheCreationInputTokens: "gen_ai.usage.cache_creation.input_tokens",
  usageReasoningOutputTokens: "gen_ai.usage.reasoning.output_tokens",
} as const;

/** The one GenAI operation Sluice performs: chat completions (ChatService Complete and StreamComplete). */
export const chatOperation = "chat";

/**
 * gen_ai.provider.name by Sluice provider type. The convention asks for the instrumentation's
 * best knowledge: an OpenAI-compatible server (vLLM, Groq…) reached with the OpenAI adapter
 * is "openai", and server.address tells which one it is. Any other type is named as it is.
 */
export function genAiProviderName(providerType: string): string {
  if (providerType === "openai") return "openai";
  if (providerType === "anthropic") return "anthropic";
  return `sluice.${providerType}`;
}

/** General attributes (stable). */
export const general = {
  errorType: "error.type",
  serverAddress: "server.address",
  serverPort: "server.port",
} as const;

/**
 * RPC attributes of the server span. Semconv 1.45.0 made them stable under new names
 * (rpc.system.name, a fully qualified rpc.method, rpc.status_code) and asks instrumentations
 * to keep emitting the older ones until OTEL_SEMCONV_STABILITY_OPT_IN says `rpc` or
 * `rpc/dup` — the ones every gRPC and Connect instrumentation of the callers emits today.
 */
export const rpcOld = {
  system: "rpc.system",
  service: "rpc.service",
  /** The method's short name ("Complete"). */
  method: "rpc.method",
  /** gRPC and gRPC-Web: the numeric status (0 = OK). */
  grpcStatusCode: "rpc.grpc.status_code",
  /** Connect: the error code ("not_found"), only on error. */
  connectErrorCode: "rpc.connect_rpc.error_code",
} as const;

export const rpcStable = {
  systemName: "rpc.system.name",
  /** Fully qualified ("sluice.v1.ChatService/Complete"): the same key as rpcOld.method, another value. */
  method: "rpc.method",
  /** The status as a string: "OK", "NOT_FOUND" (gRPC); "ok", "not_found" (Connect). */
  statusCode: "rpc.status_code",
} as const;

/** rpc.system / rpc.system.name values by the protocol a call arrived over (gRPC-Web is gRPC). */
export const rpcSystems = {
  old: { grpc: "grpc", connect: "connect_rpc" },
  stable: { grpc: "grpc", connect: "connectrpc" },
} as const;

/** Sluice's own attributes and span events (no convention covers them). */
export const sluice = {
  requestId: "sluice.request_id",
  /** The caller's tenant and the id of the credential it used (never the credential). */
  tenant: "sluice.tenant",
  keyId: "sluice.key_id",
  /** Upstream attempts the call made (retries, hedges, fail-overs included). */
  attempts: "sluice.attempts",
  /** The alias that answered when a model-level fallback was used. */
  fallbackModel: "sluice.fallback_model",
  hedged: "sluice.hedged",
  degraded: "sluice.degraded",
  /** How the response cache served the call: hit, miss, coalesced, bypass. */
  cache: "sluice.cache",
  /** The deployment key ("provider/model": the configured provider name and the upstream model) of an attempt or the answer. */
  deployment: "sluice.deployment",
  /** How an attempt ended, when not ok: error, cancelled (the caller left), superseded (lost a hedge race). */
  attemptOutcome: "sluice.attempt.outcome",
} as const;

/** Span event names of CallEvents ("breaker_open_skip" → "sluice.breaker_open_skip"). */
export function callEventName(event: string): string {
  return `sluice.${event}`;
}

/** Which RPC attribute set the server span carries (OTEL_SEMCONV_STABILITY_OPT_IN). */
export type RpcSemconv = "old" | "stable" | "both";

/**
 * What OTEL_SEMCONV_STABILITY_OPT_IN (a comma-separated list) asks of the RPC attributes:
 * `rpc/dup` both sets (it wins over `rpc`), `rpc` the stable set, otherwise the old one.
 *
 * `gen_ai_latest_experimental` asks instrumentations that emitted GenAI conventions 1.36 or
 * older to switch to the latest: Sluice never emitted the old ones, so it always emits the
 * latest it knows (the names above) and the value changes nothing.
 */
export function rpcSemconvFrom(optIn: string | undefined): RpcSemconv {
  const values = (optIn ?? "").split(",").map((value) => value.trim());
  if (values.includes("rpc/dup")) return "both";
  if (values.includes("rpc")) return "stable";
  return "old";
}
