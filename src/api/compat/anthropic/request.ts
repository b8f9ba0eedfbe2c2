import { create, type JsonObject } from "@bufbuild/protobuf";
import { type CompleteRequest, CompleteRequestSchema } from "../../../../gen/sluice/v1/chat_service_pb.js";
import {
  Role,
  ToolChoiceMode,
  type ContentPart,
  type Message,
  type Tool,
  type ToolCall,
  type ToolChoice,
} from "../../../../gen/sluice/v1/chat_pb.js";
import { cut, fieldReaders, isObject, type Json } from "../common/json-fields.js";
import { AnthropicParamError } from "./errors.js";

/** The shared field readers, refusing in this format's words (unsupported, typeError below). */
const { onlyKeys, optionalNumber, optionalBoolean } = fieldReaders({ unsupported, typeError });

/**
 * An Anthropic Messages request body (`POST /v1/messages`, or `/v1/messages/count_tokens`),
 * as JSON.parse gave it, translated into the canonical CompleteRequest — the reverse of
 * src/providers/anthropic/request.ts. Pure.
 *
 * Every field is read or refused: a field the contract cannot carry (`thinking` enabled,
 * `cache_control`, `service_tier`, `mcp_servers`, server tools, `is_error` tool results,
 * citations…) or that is unknown is an AnthropicParamError naming it, never dropped. The one
 * exception: `thinking` / `redacted_thinking` blocks of earlier assistant turns are accepted
 * and not forwarded (Anthropic itself strips earlier turns' thinking from the context).
 * JSON types are checked here; ranges and counts are the service's (validate-request.ts).
 */
export interface AnthropicMessagesRequest {
  readonly request: CompleteRequest;
  /** `stream: true`: answer with server-sent events. */
  readonly stream: boolean;
}

const messagesFields = new Set([
  "model",
  "messages",
  "max_tokens",
  "system",
  "stream",
  "temperature",
  "top_p",
  "top_k",
  "stop_sequences",
  "tools",
  "tool_choice",
  "metadata",
  "thinking",
]);

/** count_tokens takes the prompt side of a Messages request only. */
const countTokensFields = new Set(["model", "messages", "system", "tools", "tool_choice", "thinking"]);

/** `POST /v1/messages`: `max_tokens` is required, as Anthropic requires it. */
export function parseMessagesRequest(body: unknown): AnthropicMessagesRequest {
  return parse(body, false);
}

/** `POST /v1/messages/count_tokens`: the prompt (model, system, messages, tools, tool_choice). */
export function parseCountTokensRequest(body: unknown): CompleteRequest {
  return parse(body, true).request;
}

function parse(body: unknown, countOnly: boolean): AnthropicMessagesRequest {
  if (!isObject(body)) throw new AnthropicParamError(undefined, "the request body must be a JSON object");
  const allowed = countOnly ? countTokensFields : messagesFields;
  for (const key in body) if (!allowed.has(key)) throw unsupported(key);

  const model = body["model"];
  if (typeof model !== "string" || model === "") throw new AnthropicParamError("model", "model: field required (a model alias)");
  const messages = body["messages"];
  if (!Array.isArray(messages)) throw new AnthropicParamError("messages", "messages: field required (an array)");

  let maxTokens: number | undefined;
  if (!countOnly) {
    const value = body["max_tokens"];
    if (value === undefined || value === null) throw new AnthropicParamError("max_tokens", "max_tokens: field required");
    if (typeof value !== "number" || !Number.isSafeInteger(value)) throw typeError("max_tokens", "an integer");
    if (value < 1 || value > 0xffff_ffff) throw new AnthropicParamError("max_tokens", "max_tokens: must be at least 1");
    maxTokens = value;
  }
  translateThinking(body["thinking"]);

  const out: Message[] = [];
  const system = body["system"];
  if (system !== undefined && system !== null) out.push(translateSystem(system));
  for (let i = 0; i < messages.length; i++) translateMessage(messages[i], `messages.${i}`, out);

  const tools = translateTools(body["tools"]);
  const { toolChoice, parallel } = translateToolChoice(body["tool_choice"]);
  const request = create(CompleteRequestSchema, {
    model,
    messages: out,
    maxOutputTokens: maxTokens,
    temperature: optionalNumber(body, "temperature"),
    topP: optionalNumber(body, "top_p"),
    topK: optionalUint(body, "top_k"),
    stop: translateStop(body["stop_sequences"]),
    tools,
    toolChoice,
    parallelToolCalls: parallel,
    metadata: translateMetadata(body["metadata"]),
  });
  const stream = countOnly ? false : (optionalBoolean(body, "stream") ?? false);
  return { request, stream };
}

/**
 * The contract has no reasoning settings: `{"type":"disabled"}` (the default) is accepted,
 * anything that would turn extended thinking on is refused by name. A deployment's model
 * that thinks on its own still streams its thinking (in thinking blocks).
 */
function translateThinking(value: unknown): void {
  if (value === undefined || value === null) return;
  if (isObject(value) && value["type"] === "disabled" && Object.keys(value).length === 1) return;
  throw unsupported("thinking", 'only {"type":"disabled"} is supported (the gateway carries no reasoning settings)');
}

function translateSystem(system: unknown): Message {
  if (typeof system === "string") return message(Role.SYSTEM, [textPart(system)]);
  if (!Array.isArray(system)) throw typeError("system", "a string or an array of text blocks");
  const parts: ContentPart[] = [];
  system.forEach((block, j) => {
    const at = `system.${j}`;
    if (!isObject(block) || block["type"] !== "text") throw new AnthropicParamError(`${at}.type`, `${at}.type: must be text`);
    onlyKeys(block, at, "type", "text");
    parts.push(textPart(requiredString(block, "text", at)));
  });
  return message(Role.SYSTEM, parts);
}

function translateMessage(value: unknown, at: string, out: Message[]): void {
  if (!isObject(value)) throw typeError(at, "an object");
  onlyKeys(value, at, "role", "content");
  const role = value["role"];
  if (role !== "user" && role !== "assistant")
    throw new AnthropicParamError(`${at}.role`, `${at}.role: must be user or assistant`);
  const content = value["content"];
  if (typeof content === "string") {
    out.push(message(role === "user" ? Role.USER : Role.ASSISTANT, [textPart(content)]));
    return;
  }
  if (!Array.isArray(content)) throw typeError(`${at}.content`, "a string or an array of content blocks");
  if (role === "assistant") {
    out.push(translateAssistant(content, `${at}.content`));
    return;
  }
  // A user turn: tool results become ROLE_TOOL messages, in order; the other blocks between
  // them form user messages (the provider adapters put a turn's tool results first again).
  let parts: ContentPart[] = [];
  const flush = (): void => {
    if (parts.length > 0) out.push(message(Role.USER, parts));
    parts = [];
  };
  content.forEach((block, j) => {
    const blockAt = `${at}.content.${j}`;
    if (!isObject(block)) throw typeError(blockAt, "an object");
    switch (block["type"]) {
      case "text":
        onlyKeys(block, blockAt, "type", "text");
        parts.push(textPart(requiredString(block, "text", blockAt)));
        break;
      case "image":
        parts.push(imagePart(block, blockAt));
        break;
      case "tool_result":
        flush();
        out.push(toolResult(block, blockAt));
        break;
      default:
        throw unsupportedBlock(block, blockAt);
    }
  });
  flush();
  if (content.length === 0) out.push(message(Role.USER, []));
}

function translateAssistant(content: unknown[], at: string): Message {
  const parts: ContentPart[] = [];
  const calls: ToolCall[] = [];
  content.forEach((block, j) => {
    const blockAt = `${at}.${j}`;
    if (!isObject(block)) throw typeError(blockAt, "an object");
    switch (block["type"]) {
      case "text":
        onlyKeys(block, blockAt, "type", "text");
        parts.push(textPart(requiredString(block, "text", blockAt)));
        break;
      case "tool_use": {
        onlyKeys(block, blockAt, "type", "id", "name", "input");
        const input = block["input"];
        if (!isObject(input)) throw typeError(`${blockAt}.input`, "an object");
        calls.push({
          id: requiredString(block, "id", blockAt),
          name: requiredString(block, "name", blockAt),
          arguments: JSON.stringify(input),
        } as ToolCall);
        break;
      }
      case "thinking":
      case "redacted_thinking":
        // An earlier turn's thinking: Anthropic strips it from the context; not forwarded.
        break;
      default:
        throw unsupportedBlock(block, blockAt);
    }
  });
  const out = message(Role.ASSISTANT, parts);
  out.toolCalls = calls;
  return out;
}

function toolResult(block: Json, at: string): Message {
  onlyKeys(block, at, "type", "tool_use_id", "content", "is_error");
  const isError = block["is_error"];
  if (isError !== undefined && isError !== null && isError !== false) {
    throw unsupported(`${at}.is_error`, "is_error: true cannot be carried (say so in the result's text)");
  }
  const id = requiredString(block, "tool_use_id", at);
  const content = block["content"];
  const parts: ContentPart[] = [];
  if (typeof content === "string") parts.push(textPart(content));
  else if (Array.isArray(content)) {
    content.forEach((inner, k) => {
      const innerAt = `${at}.content.${k}`;
      if (!isObject(inner)) throw typeError(innerAt, "an object");
      if (inner["type"] === "text") {
        onlyKeys(inner, innerAt, "type", "text");
        parts.push(textPart(requiredString(inner, "text", innerAt)));
      } else if (inner["type"] === "image") parts.push(imagePart(inner, innerAt));
      else throw unsupportedBlock(inner, innerAt);
    });
  } else if (content !== undefined && content !== null) {
    throw typeError(`${at}.content`, "a string or an array of text and image blocks");
  }
  const out = message(Role.TOOL, parts);
  out.toolCallId = id;
  return out;
}

const mediaTypes = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const base64 = /^[A-Za-z0-9+/]*={0,2}$/;

function imagePart(block: Json, at: string): ContentPart {
  onlyKeys(block, at, "type", "source");
  const source = block["source"];
  if (!isObject(source)) throw typeError(`${at}.source`, "an object");
  const sourceAt = `${at}.source`;
  if (source["type"] === "base64") {
    onlyKeys(source, sourceAt, "type", "media_type", "data");
    const mediaType = requiredString(source, "media_type", sourceAt);
    if (!mediaTypes.has(mediaType)) {
      throw new AnthropicParamError(
        `${sourceAt}.media_type`,
        `${sourceAt}.media_type: must be image/png, image/jpeg, image/gif or image/webp`,
      );
    }
    const data = requiredString(source, "data", sourceAt);
    if (data.length % 4 !== 0 || !base64.test(data)) throw typeError(`${sourceAt}.data`, "base64");
    const bytes = new Uint8Array(Buffer.from(data, "base64"));
    return { part: { case: "image", value: { source: { case: "data", value: bytes }, mediaType } } } as unknown as ContentPart;
  }
  if (source["type"] === "url") {
    onlyKeys(source, sourceAt, "type", "url");
    const url = requiredString(source, "url", sourceAt);
    return { part: { case: "image", value: { source: { case: "url", value: url } } } } as ContentPart;
  }
  throw unsupported(`${sourceAt}.type`, "image sources are base64 or url");
}

function translateTools(value: unknown): Tool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw typeError("tools", "an array");
  return value.map((tool, i) => {
    const at = `tools.${i}`;
    if (!isObject(tool)) throw typeError(at, "an object");
    const type = tool["type"];
    // Server tools (web_search_…, bash_…, text_editor_…, code_execution_…) run at Anthropic: not carried.
    if (type !== undefined && type !== null && type !== "custom")
      throw unsupported(`${at}.type`, "only custom tools are supported");
    onlyKeys(tool, at, "type", "name", "description", "input_schema", "strict");
    const schema = tool["input_schema"];
    if (!isObject(schema)) throw typeError(`${at}.input_schema`, "an object (a JSON Schema)");
    const description = tool["description"];
    if (description !== undefined && description !== null && typeof description !== "string") {
      throw typeError(`${at}.description`, "a string");
    }
    const strict = optionalBoolean(tool, "strict", `${at}.`);
    return {
      name: requiredString(tool, "name", at),
      description: typeof description === "string" ? description : "",
      parameters: schema as JsonObject,
      strict,
    } as Tool;
  });
}

function translateToolChoice(value: unknown): { toolChoice: ToolChoice | undefined; parallel: boolean | undefined } {
  if (value === undefined || value === null) return { toolChoice: undefined, parallel: undefined };
  if (!isObject(value)) throw typeError("tool_choice", "an object");
  const type = value["type"];
  const disable = optionalBoolean(value, "disable_parallel_tool_use", "tool_choice.");
  const parallel = disable === undefined ? undefined : !disable;
  let choice: ToolChoice["choice"];
  switch (type) {
    case "auto":
      onlyKeys(value, "tool_choice", "type", "disable_parallel_tool_use");
      choice = { case: "mode", value: ToolChoiceMode.AUTO };
      break;
    case "any":
      onlyKeys(value, "tool_choice", "type", "disable_parallel_tool_use");
      choice = { case: "mode", value: ToolChoiceMode.REQUIRED };
      break;
    case "none":
      onlyKeys(value, "tool_choice", "type");
      choice = { case: "mode", value: ToolChoiceMode.NONE };
      break;
    case "tool":
      onlyKeys(value, "tool_choice", "type", "name", "disable_parallel_tool_use");
      choice = { case: "toolName", value: requiredString(value, "name", "tool_choice") };
      break;
    default:
      throw new AnthropicParamError("tool_choice.type", "tool_choice.type: must be auto, any, tool or none");
  }
  return { toolChoice: { choice } as ToolChoice, parallel };
}

function translateStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((s) => typeof s === "string"))
    throw typeError("stop_sequences", "an array of strings");
  return value as string[];
}

/** `metadata.user_id` → the call's metadata `user_id` (kept in the gateway: accounting, logs; not sent upstream). */
function translateMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw typeError("metadata", "an object");
  onlyKeys(value, "metadata", "user_id");
  const user = value["user_id"];
  if (user === undefined || user === null || user === "") return {};
  if (typeof user !== "string") throw typeError("metadata.user_id", "a string");
  return { user_id: user };
}

function message(role: Role, content: ContentPart[]): Message & { toolCalls: ToolCall[]; toolCallId: string } {
  return { role, content, toolCalls: [], toolCallId: "" } as unknown as Message & { toolCalls: ToolCall[]; toolCallId: string };
}

function textPart(text: string): ContentPart {
  return { part: { case: "text", value: text } } as ContentPart;
}

function unsupportedBlock(block: Json, at: string): AnthropicParamError {
  const type = block["type"];
  return typeof type === "string"
    ? unsupported(`${at}.type`, `${cut(type)} blocks are not supported here`)
    : new AnthropicParamError(`${at}.type`, `${at}.type: field required`);
}

function requiredString(value: Json, key: string, at: string): string {
  const found = value[key];
  if (typeof found !== "string") throw typeError(`${at}.${key}`, "a string");
  return found;
}

function optionalUint(body: Json, key: string): number | undefined {
  const value = optionalNumber(body, key);
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0 || value > 0xffff_ffff)) {
    throw typeError(key, "a non-negative integer");
  }
  return value;
}

function unsupported(param: string, why?: string): AnthropicParamError {
  const name = cut(param);
  return new AnthropicParamError(name, why === undefined ? `${name}: not supported by Sluice` : `${name}: ${why}`);
}

function typeError(param: string, expected: string): AnthropicParamError {
  const name = cut(param);
  return new AnthropicParamError(name, `${name}: must be ${expected}`);
}
