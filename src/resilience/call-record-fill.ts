import type { Usage } from "../../gen/sluice/v1/chat_pb.js";
import { FinishReason } from "../../gen/sluice/v1/chat_pb.js";
import type { RouteInfo } from "../../gen/sluice/v1/chat_service_pb.js";
import type { Candidate } from "../routing/candidate.js";
import type { CallRecord } from "../telemetry/call-record.js";
import type { AttemptAnswer } from "../telemetry/call-telemetry.js";

/** "stop", "length", "tool_calls"…: the finish reason as OpenTelemetry and the access log spell it. */
const finishReasonNames: Readonly<Record<number, string>> = Object.freeze({
  [FinishReason.UNSPECIFIED]: "",
  [FinishReason.STOP]: "stop",
  [FinishReason.LENGTH]: "length",
  [FinishReason.TOOL_CALLS]: "tool_calls",
  [FinishReason.CONTENT_FILTER]: "content_filter",
  [FinishReason.REFUSAL]: "refusal",
  [FinishReason.PAUSE]: "pause",
  [FinishReason.OTHER]: "other",
});

/** An answer's facts for telemetry: the model and id the provider reported, the finish reason, the usage. */
export function answerFacts(
  model: string | undefined,
  id: string | undefined,
  finishReason: FinishReason | undefined,
  usage: Usage | undefined,
): AttemptAnswer {
  return {
    responseModel: model,
    responseId: id,
    finishReason: finishReason === undefined ? undefined : (finishReasonNames[finishReason] ?? "other"),
    inputTokens: usage?.inputTokens,
    outputTokens: usage?.outputTokens,
    cachedInputTokens: usage?.cachedInputTokens,
    cacheWriteInputTokens: usage?.cacheWriteInputTokens,
    reasoningTokens: usage?.reasoningTokens,
  };
}

/** The call's record, once an attempt on `candidate` answered: who served it and how. */
export function recordRoute(record: CallRecord | undefined, candidate: Candidate, route: RouteInfo): void {
  if (record === undefined) return;
  const target = candidate.deployment.target;
  record.provider = target.provider;
  record.providerType = target.providerType;
  record.deployment = target.deployment;
  record.upstreamModel = target.model;
  record.price = target.price;
  record.attempts = route.attempts;
  record.fallback = route.fallbackModel;
  record.hedged = route.hedged;
}

/** What the answer reported, onto the call's record (a stream reports its start and end apart). */
export function recordAnswer(record: CallRecord | undefined, answer: AttemptAnswer): void {
  if (record === undefined) return;
  if (answer.responseModel !== undefined) record.responseModel = answer.responseModel;
  if (answer.responseId !== undefined) record.responseId = answer.responseId;
  if (answer.finishReason !== undefined) record.finishReason = answer.finishReason;
  if (answer.inputTokens !== undefined) record.inputTokens = answer.inputTokens;
  if (answer.outputTokens !== undefined) record.outputTokens = answer.outputTokens;
  if (answer.cachedInputTokens !== undefined) record.cachedInputTokens = answer.cachedInputTokens;
  if (answer.cacheWriteInputTokens !== undefined) record.cacheWriteInputTokens = answer.cacheWriteInputTokens;
  if (answer.reasoningTokens !== undefined) record.reasoningTokens = answer.reasoningTokens;
}
