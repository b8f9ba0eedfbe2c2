import { create } from "@bufbuild/protobuf";
import { FinishReason, UsageSchema, type Usage } from "../../../gen/sluice/v1/chat_pb.js";
import { isObject } from "./wire.js";

/** Anthropic's token counts as last reported. */
export interface UsageCounts {
  input: number;
  output: number;
  cacheRead: number;
  cacheCreation: number;
  thinking: number;
}

export function emptyUsage(): UsageCounts {
  return { input: 0, output: 0, cacheRead: 0, cacheCreation: 0, thinking: 0 };
}

/**
 * Folds a `usage` object into `counts`: every count it carries replaces the one held,
 * absent and null ones leave it alone. That is the right merge for both places usage
 * appears in a stream: `message_start` has the prompt side, and `message_delta` carries
 * running totals (output_tokens always; input and cache counts sometimes), never
 * increments — adding them would count the first output token twice.
 * (stream.test.ts "usage merge").
 */
export function foldUsage(counts: UsageCounts, usage: unknown): void {
  if (!isObject(usage)) return;
  const input = count(usage["input_tokens"]);
  if (input !== undefined) counts.input = input;
  const output = count(usage["output_tokens"]);
  if (output !== undefined) counts.output = output;
  const cacheRead = count(usage["cache_read_input_tokens"]);
  if (cacheRead !== undefined) counts.cacheRead = cacheRead;
  const cacheCreation = count(usage["cache_creation_input_tokens"]);
  if (cacheCreation !== undefined) counts.cacheCreation = cacheCreation;
  const details = usage["output_tokens_details"];
  if (isObject(details)) {
    const thinking = count(details["thinking_tokens"]);
    if (thinking !== undefined) counts.thinking = thinking;
  }
}

/**
 * Sluice's Usage. Anthropic's `input_tokens` counts only the uncached remainder of the
 * prompt; Sluice's `input_tokens` is the whole prompt (proto: "including cached ones"),
 * so it is input + cache reads + cache writes, with the two cache parts reported beside
 * it. Output tokens already include thinking.
 */
export function toUsage(counts: UsageCounts): Usage {
  return create(UsageSchema, {
    inputTokens: counts.input + counts.cacheRead + counts.cacheCreation,
    outputTokens: counts.output,
    cachedInputTokens: counts.cacheRead,
    cacheWriteInputTokens: counts.cacheCreation,
    reasoningTokens: counts.thinking,
  });
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.trunc(value) : undefined;
}

/**
 * Anthropic `stop_reason` → FinishReason. `model_context_window_exceeded` (newer
 * models stop when the context window fills) is a length stop too. No reason at all is
 * UNSPECIFIED; a reason Sluice does not know is OTHER.
 */
export function finishReasonOf(stopReason: unknown): FinishReason {
  switch (stopReason) {
    case "end_turn":
    case "stop_sequence":
      return FinishReason.STOP;
    case "max_tokens":
    case "model_context_window_exceeded":
      return FinishReason.LENGTH;
    case "tool_use":
      return FinishReason.TOOL_CALLS;
    case "refusal":
      return FinishReason.REFUSAL;
    case "pause_turn":
      return FinishReason.PAUSE;
    case null:
    case undefined:
      return FinishReason.UNSPECIFIED;
    default:
      return FinishReason.OTHER;
  }
}
