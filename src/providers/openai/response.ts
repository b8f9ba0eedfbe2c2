import { randomUUID } from "node:crypto";
import type { CompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role, type ContentPart, type ToolCall, type Usage } from "../../../gen/sluice/v1/chat_pb.js";
import type { UpstreamClient } from "../../transport/upstream-client.js";
import { inBandError, isErrorPayload } from "./errors.js";

/** What the translators need to report an unreadable answer (an UpstreamClient has it). */
export type AnswerFailures = Pick<UpstreamClient, "provider" | "malformed" | "streamCut">;

const finishReasons: Readonly<Record<string, FinishReason>> = {
  stop: FinishReason.STOP,
  length: FinishReason.LENGTH,
  tool_calls: FinishReason.TOOL_CALLS,
  // The legacy single-function form of a tool call.
  function_call: FinishReason.TOOL_CALLS,
  content_filter: FinishReason.CONTENT_FILTER,
};

/**
 * Maps an OpenAI `finish_reason`. A refusal arrives as finish_reason "stop" with the text in
 * `refusal` instead of `content`; Sluice reports it as FINISH_REASON_REFUSAL (the contract's
 * "the model declined", as for Anthropic) with the refusal text as the message's text, so a
 * caller expecting structured output can tell an answer from a refusal and still read why.
 * A truncated or filtered refusal keeps LENGTH / CONTENT_FILTER: those say more.
 */
export function mapFinishReason(reason: string | undefined, refused: boolean): FinishReason {
  if (reason === undefined) return FinishReason.OTHER;
  const mapped = finishReasons[reason] ?? FinishReason.OTHER;
  return refused && mapped === FinishReason.STOP ? FinishReason.REFUSAL : mapped;
}

/** A token count as uint32: anything else a server sends (null, negative, fractional) is read as 0 or floored. */
function count(value: unknown): number {
  return typeof value === "number" && value > 0 ? Math.min(Math.floor(value), 0xffff_ffff) : 0;
}

/** OpenAI `usage` → Usage. `total_tokens` is derived, not kept; details may be absent or null. */
export function mapUsage(usage: unknown): Usage {
  const u = (usage !== null && typeof usage === "object" ? usage : {}) as {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
    completion_tokens_details?: { reasoning_tokens?: unknown } | null;
  };
  return {
    $typeName: "sluice.v1.Usage",
    inputTokens: count(u.prompt_tokens),
    outputTokens: count(u.completion_tokens),
    cachedInputTokens: count(u.prompt_tokens_details?.cached_tokens),
    reasoningTokens: count(u.completion_tokens_details?.reasoning_tokens),
    cacheWriteInputTokens: 0,
  };
}

/** The completion id, or one made by Sluice when a server sends none (the contract allows it). */
export function completionId(id: unknown): string {
  return typeof id === "string" && id !== "" ? id : `chatcmpl-sluice-${randomUUID()}`;
}

/**
 * Reasoning text from OpenAI-compatible servers: `reasoning_content` (DeepSeek, vLLM,
 * llama.cpp) or `reasoning` (OpenRouter, newer vLLM). Some send both with the same text,
 * so the first present one wins rather than concatenating. OpenAI itself sends neither.
 */
export function reasoningText(message: { reasoning_content?: unknown; reasoning?: unknown }): string {
  const text = message.reasoning_content;
  if (typeof text === "string" && text !== "") return text;
  return typeof message.reasoning === "string" ? message.reasoning : "";
}

interface WireToolCall {
  readonly id?: unknown;
  readonly type?: unknown;
  readonly function?: { readonly name?: unknown; readonly arguments?: unknown } | null;
}

interface WireMessage {
  readonly content?: unknown;
  readonly refusal?: unknown;
  readonly tool_calls?: unknown;
  readonly reasoning_content?: unknown;
  readonly reasoning?: unknown;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** `content` is a string, null, or (some compatible servers) an array of `{type:"text", text}` parts. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  let text = "";
  for (const part of content as unknown[]) {
    if (part !== null && typeof part === "object" && (part as { type?: unknown }).type === "text") {
      text += str((part as { text?: unknown }).text);
    }
  }
  return text;
}

/**
 * Translates a `chat.completion` body into a CompleteResponse. Only choice index 0 is read:
 * Sluice never asks for n > 1. Unknown fields are ignored; a body without a readable
 * choice is UPSTREAM_MALFORMED, and a 2xx body that is an error object is classified as
 * that error (some compatible servers answer errors with 200).
 */
export function translateCompletion(body: unknown, call: { readonly model: string }, failures: AnswerFailures): CompleteResponse {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw failures.malformed("the body is not a JSON object");
  if (isErrorPayload(body)) throw inBandError(failures.provider, body);
  const completion = body as { id?: unknown; model?: unknown; choices?: unknown; usage?: unknown };
  const choices = Array.isArray(completion.choices) ? (completion.choices as unknown[]) : [];
  const choice = (choices.find((c) => c !== null && typeof c === "object" && ((c as { index?: unknown }).index ?? 0) === 0) ??
    undefined) as { message?: WireMessage | null; finish_reason?: unknown } | undefined;
  const message = choice?.message;
  if (message === undefined || message === null || typeof message !== "object") {
    throw failures.malformed("no choice with a message");
  }

  const content: ContentPart[] = [];
  const text = contentText(message.content);
  const refusal = str(message.refusal);
  if (text !== "") content.push(textPart(text));
  if (refusal !== "") content.push(textPart(refusal));

  const toolCalls: ToolCall[] = [];
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls as WireToolCall[]) {
      // Only function tools are ever offered; anything else (custom tools) cannot be answered.
      if (call === null || typeof call !== "object" || (call.type !== undefined && call.type !== "function")) continue;
      toolCalls.push({
        $typeName: "sluice.v1.ToolCall",
        id: str(call.id),
        name: str(call.function?.name),
        arguments: str(call.function?.arguments),
      });
    }
  }

  const finish = typeof choice?.finish_reason === "string" ? choice.finish_reason : undefined;
  // Plain objects rather than create(), as in stream.ts: the generated types check every field.
  return {
    $typeName: "sluice.v1.CompleteResponse",
    id: completionId(completion.id),
    model: typeof completion.model === "string" && completion.model !== "" ? completion.model : call.model,
    provider: failures.provider,
    message: {
      $typeName: "sluice.v1.Message",
      role: Role.ASSISTANT,
      content,
      toolCalls,
      toolCallId: "",
      name: "",
      reasoning: reasoningText(message),
    },
    finishReason: mapFinishReason(finish, refusal !== ""),
    usage: mapUsage(completion.usage),
  };
}

function textPart(text: string): ContentPart {
  return { $typeName: "sluice.v1.ContentPart", part: { case: "text", value: text } };
}
