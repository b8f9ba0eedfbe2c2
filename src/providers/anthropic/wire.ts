import type { JsonObject } from "@bufbuild/protobuf";
import type { UpstreamClient } from "../../transport/upstream-client.js";

/**
 * The Anthropic Messages API wire format, as far as Sluice sends and reads it
 * (https://docs.claude.com/en/api/messages). Only the fields the translators use are
 * typed; everything the API adds later is ignored on read, never forwarded.
 */

/** A content block Sluice sends inside `messages[].content`. */
export type RequestBlock = TextBlockParam | ImageBlockParam | ToolUseBlockParam | ToolResultBlockParam;

export interface TextBlockParam {
  type: "text";
  text: string;
}

export interface ImageBlockParam {
  type: "image";
  source: { type: "base64"; media_type: string; data: string } | { type: "url"; url: string };
}

export interface ToolUseBlockParam {
  type: "tool_use";
  id: string;
  name: string;
  input: JsonObject;
}

export interface ToolResultBlockParam {
  type: "tool_result";
  tool_use_id: string;
  /** A plain string when the result is all text (what the SDKs send), else blocks. */
  content?: string | Array<TextBlockParam | ImageBlockParam>;
}

export interface MessageParam {
  role: "user" | "assistant";
  /** A plain string for a single text block (what the SDKs send), else blocks. */
  content: string | RequestBlock[];
}

export interface ToolParam {
  name: string;
  description?: string;
  input_schema: JsonObject;
  strict?: boolean;
}

export type ToolChoiceParam =
  | { type: "auto"; disable_parallel_tool_use?: boolean }
  | { type: "any"; disable_parallel_tool_use?: boolean }
  | { type: "tool"; name: string; disable_parallel_tool_use?: boolean }
  | { type: "none" };

/** POST /v1/messages body. */
export interface MessagesRequest {
  model: string;
  max_tokens: number;
  system?: string;
  messages: MessageParam[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  stop_sequences?: string[];
  tools?: ToolParam[];
  tool_choice?: ToolChoiceParam;
  /** Structured outputs (GA): the answer is JSON matching `schema`. */
  output_config?: { format: { type: "json_schema"; schema: JsonObject } };
  stream: boolean;
}

/**
 * `usage` of a message, of `message_start.message` and of `message_delta`. Every count
 * may be absent or null; in `message_delta` the present ones are running totals.
 */
export interface UsageWire {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  output_tokens_details?: { thinking_tokens?: number | null } | null;
}

/**
 * What the translators need from the transport to report a bad answer: UpstreamClient
 * provides exactly this, tests may pass a stub. Keeps the translators free of I/O.
 */
export type WireFailures = Pick<UpstreamClient, "provider" | "malformed" | "streamCut">;

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
