import type { CompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import type { ListModelsResponse } from "../../../../gen/sluice/v1/model_service_pb.js";
import { FinishReason, type Message, type Usage } from "../../../../gen/sluice/v1/chat_pb.js";

/**
 * The contract's finish reasons in OpenAI's words. OpenAI has no refusal, pause or "other"
 * reason: a refusal (its text is the content) and an unknown reason are `stop`, a paused
 * turn (send the conversation again to continue) is `length`, as an incomplete answer.
 */
export function finishReasonName(reason: FinishReason): string {
  switch (reason) {
    case FinishReason.LENGTH:
    case FinishReason.PAUSE:
      return "length";
    case FinishReason.TOOL_CALLS:
      return "tool_calls";
    case FinishReason.CONTENT_FILTER:
      return "content_filter";
    default:
      return "stop";
  }
}

/** OpenAI's `usage` object for the contract's Usage (absent usage: zeros). */
export function usageJson(usage: Usage | undefined): object {
  const input = usage?.inputTokens ?? 0;
  const output = usage?.outputTokens ?? 0;
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: input + output,
    prompt_tokens_details: { cached_tokens: usage?.cachedInputTokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: usage?.reasoningTokens ?? 0 },
  };
}

/** Seconds since the epoch, as OpenAI's `created`. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * A `chat.completion` object: one choice (index 0), the assistant message — `content` the
 * text parts joined (null when there are none, as OpenAI sends beside tool calls),
 * `tool_calls` when the model made any, `reasoning_content` when the provider exposed
 * reasoning (the field DeepSeek, vLLM and llama.cpp use) — the finish reason and usage.
 * `model` is the model that answered, as the provider reported it (OpenAI reports the
 * dated snapshot, not the name asked for); the alias's routing is in the `sluice-*` headers.
 */
export function completionJson(response: CompleteResponse, created: number = nowSeconds()): string {
  const message = response.message;
  const out: Record<string, unknown> = {
    role: "assistant",
    content: messageText(message),
    refusal: null,
  };
  if (message !== undefined && message.toolCalls.length > 0) {
    out.tool_calls = message.toolCalls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  if (message !== undefined && message.reasoning !== "") out.reasoning_content = message.reasoning;
  return JSON.stringify({
    id: response.id,
    object: "chat.completion",
    created,
    model: response.model,
    choices: [{ index: 0, message: out, logprobs: null, finish_reason: finishReasonName(response.finishReason) }],
    usage: usageJson(response.usage),
  });
}

function messageText(message: Message | undefined): string | null {
  if (message === undefined) return null;
  const parts = message.content;
  if (parts.length === 1 && parts[0]!.part.case === "text") return parts[0]!.part.value;
  let text: string | null = null;
  for (const { part } of parts) if (part.case === "text") text = (text ?? "") + part.value;
  return text;
}

/**
 * `GET /v1/models`: OpenAI's list shape, one entry per alias the caller may use (ListModels
 * already filters by tenant), `owned_by` its primary deployment's provider. Sluice keeps no
 * creation time: `created` is 0.
 */
export function modelListJson(response: ListModelsResponse): string {
  return JSON.stringify({
    object: "list",
    data: response.models.map((model) => ({ id: model.alias, object: "model", created: 0, owned_by: model.provider })),
  });
}
