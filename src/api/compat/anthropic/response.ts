import type { CompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, type Usage } from "../../../../gen/sluice/v1/chat_pb.js";

/**
 * The contract's finish reasons in Anthropic's words. A content filter is a `refusal` (the
 * provider withheld the answer); an unknown reason is `end_turn`.
 */
export function stopReasonName(reason: FinishReason): string {
  switch (reason) {
    case FinishReason.LENGTH:
      return "max_tokens";
    case FinishReason.TOOL_CALLS:
      return "tool_use";
    case FinishReason.REFUSAL:
    case FinishReason.CONTENT_FILTER:
      return "refusal";
    case FinishReason.PAUSE:
      return "pause_turn";
    default:
      return "end_turn";
  }
}

/**
 * Anthropic's `usage`: its `input_tokens` counts only the uncached remainder of the prompt,
 * the contract's counts the whole prompt (cache reads and writes included), so the two
 * cache parts are taken out again.
 */
export function usageObject(usage: Usage | undefined): {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
} {
  const cacheRead = usage?.cachedInputTokens ?? 0;
  const cacheWrite = usage?.cacheWriteInputTokens ?? 0;
  return {
    input_tokens: Math.max(0, (usage?.inputTokens ?? 0) - cacheRead - cacheWrite),
    output_tokens: usage?.outputTokens ?? 0,
    cache_read_input_tokens: cacheRead,
    cache_creation_input_tokens: cacheWrite,
  };
}

/**
 * A tool call's arguments as the `input` object of a tool_use block. A model may emit
 * invalid or cut JSON (the contract keeps arguments as text for that reason): anything
 * that does not parse to an object is `{}` here — the stream shows the text as it came.
 */
export function toolInput(args: string): Record<string, unknown> {
  if (args === "") return {};
  try {
    const value: unknown = JSON.parse(args);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * A Messages API `message` object: content blocks in Anthropic's order — the reasoning as
 * one `thinking` block first (when the provider exposed it; no signature, Sluice does not
 * carry one), the text parts as `text` blocks, then one `tool_use` block per tool call —,
 * the stop reason and usage. `model` is the model that answered, as the provider reported it.
 */
export function messageJson(response: CompleteResponse): string {
  const message = response.message;
  const content: object[] = [];
  if (message !== undefined) {
    if (message.reasoning !== "") content.push({ type: "thinking", thinking: message.reasoning, signature: "" });
    for (const { part } of message.content) if (part.case === "text") content.push({ type: "text", text: part.value });
    for (const call of message.toolCalls) {
      content.push({ type: "tool_use", id: call.id, name: call.name, input: toolInput(call.arguments) });
    }
  }
  return JSON.stringify({
    id: response.id,
    type: "message",
    role: "assistant",
    model: response.model,
    content,
    stop_reason: stopReasonName(response.finishReason),
    stop_sequence: null,
    usage: usageObject(response.usage),
  });
}
