import type { Attributes, Span } from "@opentelemetry/api";
import { Code, type ConnectError } from "@connectrpc/connect";
import { UpstreamError } from "../errors/gateway-error.js";
import type { CallProtocol, CallRecord } from "./call-record.js";
import type { AttemptAnswer, AttemptRole, AttemptTarget } from "./call-telemetry.js";
import { codeName, codeNames } from "./error-type.js";
import {
  chatOperation,
  general,
  genAi,
  genAiProviderName,
  type RpcSemconv,
  rpcOld,
  rpcStable,
  rpcSystems,
  sluice,
} from "./gen-ai-semconv.js";

/**
 * The attributes of Sluice's spans, built from what the call record and the attempt
 * observations report. Never request or answer text, never an error message (it may quote
 * a provider's message, which may quote the prompt): names, ids, counts, codes.
 */

/** A server span's first attributes, by protocol and RPC: the same few objects for every call. */
export function createServerStartAttributes(semconv: RpcSemconv): (rpc: string, protocol: CallProtocol) => Attributes {
  const cache = new Map<string, Attributes>();
  return (rpc, protocol) => {
    const key = `${protocol} ${rpc}`;
    let attributes = cache.get(key);
    if (attributes === undefined) {
      attributes = serverStartAttributes(rpc, protocol, semconv);
      cache.set(key, attributes);
    }
    return attributes;
  };
}

function serverStartAttributes(rpc: string, protocol: CallProtocol, semconv: RpcSemconv): Attributes {
  const slash = rpc.lastIndexOf("/");
  const system = protocol === "connect" ? "connect" : "grpc";
  const attributes: Attributes = {};
  if (semconv !== "stable") {
    attributes[rpcOld.system] = rpcSystems.old[system];
    attributes[rpcOld.service] = rpc.slice(0, slash);
    attributes[rpcOld.method] = rpc.slice(slash + 1);
  }
  if (semconv !== "old") {
    attributes[rpcStable.systemName] = rpcSystems.stable[system];
    // With both sets the key is shared: the stable, fully qualified value wins (rpc.service still names the service).
    attributes[rpcStable.method] = rpc;
  }
  return Object.freeze(attributes);
}

/**
 * Codes a server span counts as its own failure (the RPC conventions' list for gRPC and
 * Connect servers); the others (not found, invalid argument…) are the caller's. A failure
 * relayed from a provider (UpstreamError: rate limited, credentials refused, model gone) is
 * the gateway's whatever its code, except a request the provider found invalid.
 */
const serverFaults: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

export function isServerFault(error: ConnectError): boolean {
  return serverFaults.has(error.code) || (error instanceof UpstreamError && error.code !== Code.InvalidArgument);
}

/** gRPC status names as gRPC spells them ("CANCELLED", where Connect says "canceled"). */
function grpcStatusName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return code === Code.Canceled ? "CANCELLED" : (codeNames[code] ?? "unknown").toUpperCase();
}

/** The call's status code attributes. */
export function setRpcStatus(span: Span, protocol: CallProtocol, error: ConnectError | undefined, semconv: RpcSemconv): void {
  const grpc = protocol !== "connect";
  if (semconv !== "stable") {
    if (grpc) span.setAttribute(rpcOld.grpcStatusCode, error?.code ?? 0);
    else if (error !== undefined) span.setAttribute(rpcOld.connectErrorCode, codeName(error));
  }
  if (semconv !== "old") span.setAttribute(rpcStable.statusCode, grpc ? grpcStatusName(error?.code) : codeName(error));
}

/**
 * What the record says at the call's end: a summary of the chat call (the alias asked for,
 * the model that answered, usage, finish reason) and Sluice's routing facts. Not
 * gen_ai.operation.name nor gen_ai.provider.name: the attempt spans are the GenAI
 * operations, and a backend that aggregates usage per operation must not count a call
 * twice. Each attribute costs about 0.4 µs (set and serialised): only what a query needs.
 */
export function setRecordAttributes(span: Span, record: CallRecord): void {
  if (record.requestId !== "") span.setAttribute(sluice.requestId, record.requestId);
  if (record.tenant !== "") {
    span.setAttribute(sluice.tenant, record.tenant);
    if (record.keyId !== "") span.setAttribute(sluice.keyId, record.keyId);
  }
  if (record.alias === "") return;
  span.setAttribute(genAi.requestModel, record.alias);
  span.setAttribute(genAi.requestStream, record.stream);
  span.setAttribute(sluice.attempts, record.attempts);
  if (record.fallback !== "") span.setAttribute(sluice.fallbackModel, record.fallback);
  if (record.hedged) span.setAttribute(sluice.hedged, true);
  if (record.degraded) span.setAttribute(sluice.degraded, true);
  if (record.cacheStatus !== "") span.setAttribute(sluice.cache, record.cacheStatus);
  if (record.ttftMs !== undefined) span.setAttribute(genAi.responseTimeToFirstChunk, record.ttftMs / 1000);
  if (record.provider === "") return;
  span.setAttribute(sluice.deployment, record.deployment);
  if (record.responseModel !== "") span.setAttribute(genAi.responseModel, record.responseModel);
  if (record.finishReason !== "") span.setAttribute(genAi.responseFinishReasons, [record.finishReason]);
  setUsageAttributes(span, record);
}

/** What an answer reported. */
export function setAnswerAttributes(span: Span, answer: AttemptAnswer): void {
  if (answer.responseModel) span.setAttribute(genAi.responseModel, answer.responseModel);
  if (answer.responseId) span.setAttribute(genAi.responseId, answer.responseId);
  if (answer.finishReason) span.setAttribute(genAi.responseFinishReasons, [answer.finishReason]);
  setUsageAttributes(span, answer);
}

/** Token counts; cache and reasoning counts only when the provider reported some. */
function setUsageAttributes(span: Span, usage: AttemptAnswer): void {
  if (usage.inputTokens !== undefined) span.setAttribute(genAi.usageInputTokens, usage.inputTokens);
  if (usage.outputTokens !== undefined) span.setAttribute(genAi.usageOutputTokens, usage.outputTokens);
  if (usage.cachedInputTokens) span.setAttribute(genAi.usageCacheReadInputTokens, usage.cachedInputTokens);
  if (usage.cacheWriteInputTokens) span.setAttribute(genAi.usageCacheCreationInputTokens, usage.cacheWriteInputTokens);
  if (usage.reasoningTokens) span.setAttribute(genAi.usageReasoningOutputTokens, usage.reasoningTokens);
}

/** An attempt span's name and first attributes, per deployment and streaming or not: built once each. */
export interface AttemptStart {
  readonly name: string;
  readonly attributes: Attributes;
}

export function createAttemptStarts(): (target: AttemptTarget, stream: boolean) => AttemptStart {
  const cache = new WeakMap<AttemptTarget, [AttemptStart | undefined, AttemptStart | undefined]>();
  return (target, stream) => {
    let pair = cache.get(target);
    if (pair === undefined) cache.set(target, (pair = [undefined, undefined]));
    const index = stream ? 1 : 0;
    return (pair[index] ??= attemptStart(target, stream));
  };
}

function attemptStart(target: AttemptTarget, stream: boolean): AttemptStart {
  const attributes: Attributes = {
    [genAi.operationName]: chatOperation,
    [genAi.providerName]: genAiProviderName(target.providerType),
    [genAi.requestModel]: target.model,
    [genAi.requestStream]: stream,
    // "provider/model": names the configured provider too.
    [sluice.deployment]: target.deployment,
  };
  if (target.serverAddress !== "") attributes[general.serverAddress] = target.serverAddress;
  if (target.serverPort !== undefined) attributes[general.serverPort] = target.serverPort;
  return Object.freeze({ name: `${chatOperation} ${target.model}`, attributes: Object.freeze(attributes) });
}

/** How this attempt relates to its call, when it is not the plain first choice. */
export function setRoleAttributes(span: Span, record: CallRecord, role: AttemptRole): void {
  if (role.hedged) span.setAttribute(sluice.hedged, true);
  if (record.alias !== "" && role.alias !== record.alias) span.setAttribute(sluice.fallbackModel, role.alias);
}
