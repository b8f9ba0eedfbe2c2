import { create, type JsonObject } from "@bufbuild/protobuf";
import { type CompleteRequest, CompleteRequestSchema } from "../../../../gen/sluice/v1/chat_service_pb.js";
import {
  ImageDetail,
  Role,
  ToolChoiceMode,
  type ContentPart,
  type Message,
  type ResponseFormat,
  type Tool,
  type ToolCall,
  type ToolChoice,
} from "../../../../gen/sluice/v1/chat_pb.js";
import { cut, fieldReaders, isObject, type Json } from "../common/json-fields.js";
import { OpenAiParamError } from "./errors.js";

/** The shared field readers, refusing in this format's words (unsupported, typeError below). */
const { onlyKeys, optionalNumber, optionalBoolean } = fieldReaders({ unsupported, typeError });

/**
 * An OpenAI Chat Completions request body (`POST /v1/chat/completions`), as JSON.parse gave
 * it, translated into the canonical CompleteRequest — the reverse of
 * src/providers/openai/request.ts. Pure.
 *
 * Every field is read or refused: a field Sluice does not support (`n` above 1, `logprobs`,
 * `logit_bias`, `audio`, `functions`, `service_tier`…) or does not know is an
 * OpenAiParamError naming it (`param`), never dropped. `null` means unset, as in OpenAI's API.
 * Values are checked for their JSON type here; ranges and counts are the service's
 * (validate-request.ts), which every protocol shares.
 */
export interface OpenAiChatRequest {
  readonly request: CompleteRequest;
  /** `stream: true`: answer with server-sent events. */
  readonly stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `usage` before `[DONE]`. */
  readonly includeUsage: boolean;
}

/** Top-level fields and what reads them; anything else is refused by name. */
const topLevel = new Set([
  "model",
  "messages",
  "stream",
  "stream_options",
  "temperature",
  "top_p",
  "max_tokens",
  "max_completion_tokens",
  "stop",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "user",
  "metadata",
  "n",
  "logprobs",
]);

export function parseChatRequest(body: unknown): OpenAiChatRequest {
  if (!isObject(body)) throw new OpenAiParamError(undefined, "the request body must be a JSON object");
  for (const key in body) {
    if (!topLevel.has(key)) throw unsupported(key);
  }
  const model = body["model"];
  if (typeof model !== "string" || model === "")
    throw new OpenAiParamError("model", "model is required (a model alias: GET /v1/models)", "missing_required_parameter");
  const messages = body["messages"];
  if (!Array.isArray(messages))
    throw new OpenAiParamError("messages", "messages is required and must be an array", "missing_required_parameter");

  const n = body["n"];
  if (n !== undefined && n !== null && n !== 1) throw unsupported("n", "only n: 1 is supported");
  const logprobs = body["logprobs"];
  if (logprobs !== undefined && logprobs !== null && logprobs !== false) throw unsupported("logprobs");

  const stream = optionalBoolean(body, "stream") ?? false;
  let includeUsage = false;
  const streamOptions = body["stream_options"];
  if (streamOptions !== undefined && streamOptions !== null) {
    if (!isObject(streamOptions)) throw typeError("stream_options", "an object");
    for (const key in streamOptions) {
      if (key !== "include_usage") throw unsupported(`stream_options.${key}`);
    }
    includeUsage = optionalBoolean(streamOptions, "include_usage", "stream_options.") ?? false;
    if (!stream) throw new OpenAiParamError("stream_options", "stream_options is only allowed with stream: true");
  }

  const out: Message[] = new Array(messages.length);
  for (let i = 0; i < messages.length; i++) out[i] = translateMessage(messages[i], `messages[${i}]`);

  const maxTokens = optionalInteger(body, "max_tokens");
  const maxCompletionTokens = optionalInteger(body, "max_completion_tokens");
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    throw new OpenAiParamError("max_tokens", "set max_tokens or max_completion_tokens, not both");
  }
  const maxOutput = maxCompletionTokens ?? maxTokens;
  if (maxOutput !== undefined && (maxOutput < 0 || maxOutput > 0xffff_ffff)) {
    throw new OpenAiParamError(maxCompletionTokens !== undefined ? "max_completion_tokens" : "max_tokens", "out of range");
  }
  const seed = optionalInteger(body, "seed");

  const tools = translateTools(body["tools"]);
  const metadata = translateMetadata(body["metadata"]);
  const user = body["user"];
  if (user !== undefined && user !== null) {
    if (typeof user !== "string") throw typeError("user", "a string");
    if (user !== "") metadata.user = user;
  }

  const request = create(CompleteRequestSchema, {
    model,
    messages: out,
    temperature: optionalNumber(body, "temperature"),
    topP: optionalNumber(body, "top_p"),
    maxOutputTokens: maxOutput,
    stop: translateStop(body["stop"]),
    seed: seed === undefined ? undefined : BigInt(seed),
    presencePenalty: optionalNumber(body, "presence_penalty"),
    frequencyPenalty: optionalNumber(body, "frequency_penalty"),
    tools,
    toolChoice: translateToolChoice(body["tool_choice"]),
    parallelToolCalls: optionalBoolean(body, "parallel_tool_calls"),
    responseFormat: translateResponseFormat(body["response_format"]),
    metadata,
  });
  return { request, stream, includeUsage };
}

// Maps, not object literals: a caller's "constructor" or "__proto__" must find nothing.
const roles: ReadonlyMap<unknown, Role> = new Map([
  ["system", Role.SYSTEM],
  // OpenAI's newer name for system instructions (o-series models); one role in the contract.
  ["developer", Role.SYSTEM],
  ["user", Role.USER],
  ["assistant", Role.ASSISTANT],
  ["tool", Role.TOOL],
]);

/** Fields each role may carry; anything else is refused by name. */
const messageFields: ReadonlyMap<unknown, ReadonlySet<string>> = new Map([
  ["system", new Set(["role", "content", "name"])],
  ["developer", new Set(["role", "content", "name"])],
  ["user", new Set(["role", "content", "name"])],
  ["assistant", new Set(["role", "content", "name", "tool_calls", "refusal", "reasoning_content"])],
  ["tool", new Set(["role", "content", "tool_call_id"])],
]);

function translateMessage(value: unknown, at: string): Message {
  if (!isObject(value)) throw typeError(at, "an object");
  const roleName = value["role"];
  const role = roles.get(roleName);
  if (role === undefined) {
    // `function` is the legacy form of `tool`: refused by name rather than reported as unknown.
    if (roleName === "function") throw unsupported(`${at}.role`, "the function role is not supported: use tool messages");
    throw new OpenAiParamError(`${at}.role`, "must be system, developer, user, assistant or tool");
  }
  const allowed = messageFields.get(roleName)!;
  for (const key in value) {
    if (!allowed.has(key)) throw unsupported(`${at}.${key}`);
  }
  const message: Partial<Message> & { role: Role } = { role };
  const name = value["name"];
  if (name !== undefined && name !== null) {
    if (typeof name !== "string") throw typeError(`${at}.name`, "a string");
    message.name = name;
  }
  const content = value["content"];
  if (role === Role.ASSISTANT) {
    const refusal = value["refusal"];
    if (refusal !== undefined && refusal !== null && refusal !== "") throw unsupported(`${at}.refusal`);
    const reasoning = value["reasoning_content"];
    if (reasoning !== undefined && reasoning !== null) {
      if (typeof reasoning !== "string") throw typeError(`${at}.reasoning_content`, "a string");
      message.reasoning = reasoning;
    }
    message.content = content === undefined || content === null ? [] : translateContent(content, `${at}.content`, false);
    const calls = value["tool_calls"];
    if (calls !== undefined && calls !== null) message.toolCalls = translateToolCalls(calls, `${at}.tool_calls`);
  } else {
    if (content === undefined || content === null)
      throw new OpenAiParamError(`${at}.content`, "content is required", "missing_required_parameter");
    message.content = translateContent(content, `${at}.content`, role === Role.USER);
    if (role === Role.TOOL) {
      const id = value["tool_call_id"];
      if (typeof id !== "string")
        throw new OpenAiParamError(`${at}.tool_call_id`, "tool_call_id is required (a string)", "missing_required_parameter");
      message.toolCallId = id;
    }
  }
  return message as Message;
}

const imageDetails: ReadonlyMap<unknown, ImageDetail> = new Map([
  ["auto", ImageDetail.AUTO],
  ["low", ImageDetail.LOW],
  ["high", ImageDetail.HIGH],
]);

function translateContent(content: unknown, at: string, images: boolean): ContentPart[] {
  if (typeof content === "string") return [{ part: { case: "text", value: content } } as ContentPart];
  if (!Array.isArray(content)) throw typeError(at, "a string or an array of content parts");
  const parts: ContentPart[] = new Array(content.length);
  for (let j = 0; j < content.length; j++) {
    const part = content[j];
    const partAt = `${at}[${j}]`;
    if (!isObject(part)) throw typeError(partAt, "an object");
    const type = part["type"];
    if (type === "text") {
      onlyKeys(part, partAt, "type", "text");
      const text = part["text"];
      if (typeof text !== "string") throw typeError(`${partAt}.text`, "a string");
      parts[j] = { part: { case: "text", value: text } } as ContentPart;
    } else if (type === "image_url" && images) {
      onlyKeys(part, partAt, "type", "image_url");
      const image = part["image_url"];
      if (!isObject(image)) throw typeError(`${partAt}.image_url`, "an object");
      onlyKeys(image, `${partAt}.image_url`, "url", "detail");
      const url = image["url"];
      if (typeof url !== "string" || url === "") throw typeError(`${partAt}.image_url.url`, "a URL");
      const detailName = image["detail"];
      let detail = ImageDetail.UNSPECIFIED;
      if (detailName !== undefined && detailName !== null) {
        const known = imageDetails.get(detailName);
        if (known === undefined) throw new OpenAiParamError(`${partAt}.image_url.detail`, "must be auto, low or high");
        detail = known;
      }
      parts[j] = { part: { case: "image", value: { source: { case: "url", value: url }, detail } } } as ContentPart;
    } else {
      // input_audio, file, refusal parts, or images outside user messages.
      throw unsupported(
        `${partAt}.type`,
        `content parts of type ${typeof type === "string" ? cut(type) : "?"} are not supported here`,
      );
    }
  }
  return parts;
}

function translateToolCalls(calls: unknown, at: string): ToolCall[] {
  if (!Array.isArray(calls)) throw typeError(at, "an array");
  const out: ToolCall[] = new Array(calls.length);
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i];
    const callAt = `${at}[${i}]`;
    if (!isObject(call)) throw typeError(callAt, "an object");
    if (call["type"] !== "function") throw unsupported(`${callAt}.type`, "only function tool calls are supported");
    onlyKeys(call, callAt, "id", "type", "function");
    const fn = call["function"];
    if (!isObject(fn)) throw typeError(`${callAt}.function`, "an object");
    onlyKeys(fn, `${callAt}.function`, "name", "arguments");
    const id = call["id"];
    const name = fn["name"];
    const args = fn["arguments"];
    if (typeof id !== "string") throw typeError(`${callAt}.id`, "a string");
    if (typeof name !== "string") throw typeError(`${callAt}.function.name`, "a string");
    if (typeof args !== "string") throw typeError(`${callAt}.function.arguments`, "a string (JSON text)");
    out[i] = { id, name, arguments: args } as ToolCall;
  }
  return out;
}

function translateTools(tools: unknown): Tool[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw typeError("tools", "an array");
  const out: Tool[] = new Array(tools.length);
  for (let i = 0; i < tools.length; i++) {
    const tool = tools[i];
    const at = `tools[${i}]`;
    if (!isObject(tool)) throw typeError(at, "an object");
    if (tool["type"] !== "function") throw unsupported(`${at}.type`, "only function tools are supported");
    onlyKeys(tool, at, "type", "function");
    const fn = tool["function"];
    if (!isObject(fn)) throw typeError(`${at}.function`, "an object");
    onlyKeys(fn, `${at}.function`, "name", "description", "parameters", "strict");
    const name = fn["name"];
    if (typeof name !== "string") throw typeError(`${at}.function.name`, "a string");
    const description = fn["description"];
    if (description !== undefined && description !== null && typeof description !== "string") {
      throw typeError(`${at}.function.description`, "a string");
    }
    const parameters = fn["parameters"];
    if (parameters !== undefined && parameters !== null && !isObject(parameters)) {
      throw typeError(`${at}.function.parameters`, "a JSON Schema object");
    }
    out[i] = {
      name,
      description: typeof description === "string" ? description : "",
      // google.protobuf.Struct is a JsonObject in protobuf-es: the parsed schema as it is, no copy.
      parameters: isObject(parameters) ? (parameters as JsonObject) : undefined,
      strict: optionalBoolean(fn, "strict", `${at}.function.`),
    } as Tool;
  }
  return out;
}

const toolChoiceModes: ReadonlyMap<unknown, ToolChoiceMode> = new Map([
  ["auto", ToolChoiceMode.AUTO],
  ["none", ToolChoiceMode.NONE],
  ["required", ToolChoiceMode.REQUIRED],
]);

function translateToolChoice(choice: unknown): ToolChoice | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (typeof choice === "string") {
    const mode = toolChoiceModes.get(choice);
    if (mode === undefined) throw new OpenAiParamError("tool_choice", "must be auto, none, required or a function");
    return { choice: { case: "mode", value: mode } } as ToolChoice;
  }
  if (!isObject(choice)) throw typeError("tool_choice", "a string or an object");
  if (choice["type"] !== "function") throw unsupported("tool_choice.type", "only function tool choices are supported");
  onlyKeys(choice, "tool_choice", "type", "function");
  const fn = choice["function"];
  if (!isObject(fn)) throw typeError("tool_choice.function", "an object");
  onlyKeys(fn, "tool_choice.function", "name");
  const name = fn["name"];
  if (typeof name !== "string") throw typeError("tool_choice.function.name", "a string");
  return { choice: { case: "toolName", value: name } } as ToolChoice;
}

function translateResponseFormat(format: unknown): ResponseFormat | undefined {
  if (format === undefined || format === null) return undefined;
  if (!isObject(format)) throw typeError("response_format", "an object");
  const type = format["type"];
  if (type === "text" || type === "json_object") {
    onlyKeys(format, "response_format", "type");
    return { format: { case: type === "text" ? "text" : "jsonObject", value: {} } } as ResponseFormat;
  }
  if (type !== "json_schema") throw unsupported("response_format.type", "must be text, json_object or json_schema");
  onlyKeys(format, "response_format", "type", "json_schema");
  const spec = format["json_schema"];
  if (!isObject(spec))
    throw new OpenAiParamError(
      "response_format.json_schema",
      "json_schema is required (an object)",
      "missing_required_parameter",
    );
  onlyKeys(spec, "response_format.json_schema", "name", "description", "schema", "strict");
  const name = spec["name"];
  if (typeof name !== "string") throw typeError("response_format.json_schema.name", "a string");
  const description = spec["description"];
  if (description !== undefined && description !== null && typeof description !== "string") {
    throw typeError("response_format.json_schema.description", "a string");
  }
  const schema = spec["schema"];
  if (schema !== undefined && schema !== null && !isObject(schema)) {
    throw typeError("response_format.json_schema.schema", "a JSON Schema object");
  }
  return {
    format: {
      case: "jsonSchema",
      value: {
        name,
        description: typeof description === "string" ? description : "",
        schema: isObject(schema) ? (schema as JsonObject) : undefined,
        strict: optionalBoolean(spec, "strict", "response_format.json_schema."),
      },
    },
  } as ResponseFormat;
}

function translateStop(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  if (typeof stop === "string") return [stop];
  if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string"))
    throw typeError("stop", "a string or an array of strings");
  return stop as string[];
}

function translateMetadata(metadata: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (metadata === undefined || metadata === null) return out;
  if (!isObject(metadata)) throw typeError("metadata", "an object of strings");
  for (const key in metadata) {
    const value = metadata[key];
    if (typeof value !== "string") throw typeError(`metadata.${cut(key)}`, "a string");
    out[key] = value;
  }
  return out;
}

function optionalInteger(body: Json, key: string): number | undefined {
  const value = optionalNumber(body, key);
  if (value !== undefined && !Number.isSafeInteger(value)) throw typeError(key, "an integer");
  return value;
}

function unsupported(param: string, why?: string): OpenAiParamError {
  const name = cut(param);
  return new OpenAiParamError(
    name,
    why === undefined ? `${name} is not supported by Sluice` : `${name}: ${why}`,
    "unsupported_parameter",
  );
}

function typeError(param: string, expected: string): OpenAiParamError {
  return new OpenAiParamError(param, `${param} must be ${expected}`, "invalid_type");
}
