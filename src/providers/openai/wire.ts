import type { JsonObject } from "@bufbuild/protobuf";

// The OpenAI Chat Completions request body, as far as Sluice sends it. Field names are the
// wire names (snake_case); every optional field is absent unless the caller set it.

export interface ChatTextPart {
  type: "text";
  text: string;
}
export interface ChatImagePart {
  type: "image_url";
  image_url: { url: string; detail?: "auto" | "low" | "high" };
}
export type ChatContentPart = ChatTextPart | ChatImagePart;

export interface ChatToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: "system"; content: string | ChatTextPart[]; name?: string }
  | { role: "user"; content: string | ChatContentPart[]; name?: string }
  | { role: "assistant"; content: string | ChatTextPart[] | null; name?: string; tool_calls?: ChatToolCall[] }
  | { role: "tool"; content: string | ChatTextPart[]; tool_call_id: string };

export interface ChatTool {
  type: "function";
  function: { name: string; description?: string; parameters?: JsonObject; strict?: boolean };
}

export type ChatToolChoice = "auto" | "none" | "required" | { type: "function"; function: { name: string } };

export type ChatResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; description?: string; schema?: JsonObject; strict?: boolean } };

export interface ChatRequestBody {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  max_completion_tokens?: number;
  max_tokens?: number;
  stop?: string[];
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  tools?: ChatTool[];
  tool_choice?: ChatToolChoice;
  parallel_tool_calls?: boolean;
  response_format?: ChatResponseFormat;
  stream?: true;
  stream_options?: { include_usage: true };
}

/**
 * Which field carries `max_output_tokens`. OpenAI deprecated `max_tokens` for
 * `max_completion_tokens` and rejects `max_tokens` on its reasoning models, so the current
 * field is the default. Some OpenAI-compatible servers only know `max_tokens` and silently
 * ignore the other (an output limit silently dropped means unbounded cost), so the choice
 * belongs to the provider's configuration, never to a guess. Sending both is not an option:
 * OpenAI's reasoning models reject a request that carries `max_tokens` at all.
 */
export type MaxTokensField = "max_completion_tokens" | "max_tokens";
