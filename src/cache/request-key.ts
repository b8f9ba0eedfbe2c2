import { hash } from "node:crypto";
import type { ContentPart, Message, Tool } from "../../gen/sluice/v1/chat_pb.js";
import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";

/**
 * The cache key of a request: SHA-256 (base64url) of its canonical form — the resolved
 * alias, every message, tool and generation setting, the metadata (routing may read it) —
 * but not `cache` nor `idempotency_key`, which say how to serve the call, not what it asks.
 *
 * The canonical form is a string built field by field with length prefixes (never
 * ambiguous), not the protobuf binary: protobuf-es's `toBinary` of a 2 KB request costs
 * ~35 µs, this ~1 µs plus the hash (bench/micro/cache-steps.ts). `canonicalFields` lists
 * the fields it covers; request-key.test.ts fails when CompleteRequest gains one it does not.
 */
export function requestKey(request: CompleteRequest, alias: string): string {
  return hash("sha256", canonicalRequest(request, alias), "base64url");
}

/** The CompleteRequest fields the canonical form covers (or leaves out on purpose: cache, idempotency_key). */
export const canonicalFields = [
  "model",
  "messages",
  "temperature",
  "top_p",
  "max_output_tokens",
  "stop",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "top_k",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "metadata",
  "cache",
  "idempotency_key",
] as const;

const str = (text: string): string => `${text.length}:${text}`;
const opt = (value: number | bigint | boolean | undefined): string => (value === undefined ? "-;" : `${value};`);

export function canonicalRequest(request: CompleteRequest, alias: string): string {
  let s = `v1;${str(alias)}`;
  for (const message of request.messages) s += messageText(message);
  s += `|${opt(request.temperature)}${opt(request.topP)}${opt(request.maxOutputTokens)}${opt(request.seed)}`;
  s += `${opt(request.presencePenalty)}${opt(request.frequencyPenalty)}${opt(request.topK)}${opt(request.parallelToolCalls)}`;
  s += `s${request.stop.length};`;
  for (const stop of request.stop) s += str(stop);
  s += `t${request.tools.length};`;
  for (const tool of request.tools) s += toolText(tool);
  const choice = request.toolChoice?.choice;
  s += choice === undefined || choice.case === undefined ? "c-;" : `c${choice.case};${str(String(choice.value))}`;
  const format = request.responseFormat?.format;
  if (format === undefined || format.case === undefined) s += "f-;";
  else if (format.case === "jsonSchema") {
    const schema = format.value;
    s += `fs;${str(schema.name)}${str(schema.description)}${str(JSON.stringify(schema.schema ?? null))}${opt(schema.strict)}`;
  } else s += `f${format.case};`;
  const keys = Object.keys(request.metadata);
  if (keys.length > 0) {
    keys.sort();
    s += `m${keys.length};`;
    for (const key of keys) s += str(key) + str(request.metadata[key]!);
  }
  return s;
}

function messageText(message: Message): string {
  let s = `|m${message.role};${str(message.name)}${str(message.toolCallId)}${message.content.length};`;
  for (const part of message.content) s += partText(part);
  if (message.toolCalls.length > 0) {
    s += `k${message.toolCalls.length};`;
    for (const call of message.toolCalls) s += str(call.id) + str(call.name) + str(call.arguments);
  }
  return s;
}

function partText(part: ContentPart): string {
  const p = part.part;
  if (p.case === "text") return `t${str(p.value)}`;
  if (p.case === "image") {
    const image = p.value;
    const source = image.source;
    const data =
      source.case === "url"
        ? `u${str(source.value)}`
        : source.case === "data"
          ? `d${hash("sha256", source.value, "base64url")}`
          : "-";
    return `i${data}${str(image.mediaType)}${image.detail};`;
  }
  return "-;";
}

function toolText(tool: Tool): string {
  return str(tool.name) + str(tool.description) + str(JSON.stringify(tool.parameters ?? null)) + opt(tool.strict);
}

/** A request whose answer should not change between calls: temperature 0, or a seed. */
export function isDeterministic(request: CompleteRequest): boolean {
  return request.temperature === 0 || request.seed !== undefined;
}

/** The request's end user: `metadata["end_user"]`, or `metadata["user"]` (the OpenAI `user` field); "" when none. */
export function endUserOf(request: CompleteRequest): string {
  return request.metadata["end_user"] ?? request.metadata["user"] ?? "";
}

/** How an end user is named in keys: a short hash ("-" for none), so any string is a safe key part. */
export function userTag(endUser: string): string {
  return endUser === "" ? "-" : hash("sha256", endUser, "base64url").slice(0, 22);
}

/** An idempotency key as stored: its hash (any caller string becomes a fixed-size safe key). */
export function idempotencyTag(key: string): string {
  return hash("sha256", key, "base64url");
}
