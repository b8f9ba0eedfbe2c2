import type { JsonObject } from "@bufbuild/protobuf";
import type { CompleteRequest } from "../../../gen/sluice/v1/chat_service_pb.js";
import { ImageDetail, Role, ToolChoiceMode, type ContentPart, type Image, type Message } from "../../../gen/sluice/v1/chat_pb.js";
import { invalidArgument, type FieldViolation } from "../../errors/gateway-error.js";
import { reasons, type Reason } from "../../errors/reasons.js";
import type {
  ChatContentPart,
  ChatImagePart,
  ChatMessage,
  ChatRequestBody,
  ChatTextPart,
  ChatTool,
  ChatToolCall,
  MaxTokensField,
} from "./wire.js";

export interface ChatRequestOptions {
  /** The deployment's upstream model id (UpstreamCall.model), not the caller's alias. */
  readonly model: string;
  readonly stream: boolean;
  /** Configured provider name, for error messages. */
  readonly provider: string;
  readonly maxTokensField?: MaxTokensField;
}

const imageDetails: Readonly<Record<number, "auto" | "low" | "high" | undefined>> = {
  [ImageDetail.AUTO]: "auto",
  [ImageDetail.LOW]: "low",
  [ImageDetail.HIGH]: "high",
};

/** The largest integer a JSON number carries exactly (2^53 - 1). */
const maxExactSeed = BigInt(Number.MAX_SAFE_INTEGER);

/** Media types OpenAI accepts for image input (its vision guide: PNG, JPEG, WEBP, non-animated GIF). */
const imageMediaTypes = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/**
 * Translates a CompleteRequest into an OpenAI Chat Completions body. Pure: it never mutates
 * `request` (it runs again on every retry and fallback) and reuses the caller's strings and
 * JSON objects rather than copying them; the result is serialized once with JSON.stringify.
 *
 * Throws INVALID_ARGUMENT naming every field this provider cannot take, before anything is
 * sent. Provider-independent checks (roles, required fields, ranges) are the service's
 * (src/api/validate-request.ts); this only rejects what is OpenAI-specific.
 */
export function buildChatRequest(request: CompleteRequest, options: ChatRequestOptions): ChatRequestBody {
  const violations: FieldViolation[] = [];
  const bad: Violations = {
    unsupported(field, what = "") {
      violations.push({
        field,
        description: `${what}not supported by provider ${options.provider} (openai)`,
        reason: reasons.unsupportedByProvider,
      });
    },
    invalid(field, description, reason = reasons.invalidField) {
      violations.push({ field, description, reason });
    },
  };

  const messages: ChatMessage[] = new Array(request.messages.length);
  for (let i = 0; i < request.messages.length; i++) {
    messages[i] = translateMessage(request.messages[i]!, `messages[${i}]`, bad);
  }

  const body: ChatRequestBody = { model: options.model, messages };
  // Proto3 `optional` fields are undefined when unset: only set ones are sent, so the
  // provider's own defaults apply otherwise.
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.topP !== undefined) body.top_p = request.topP;
  if (request.maxOutputTokens !== undefined) body[options.maxTokensField ?? "max_completion_tokens"] = request.maxOutputTokens;
  if (request.stop.length > 0) body.stop = request.stop;
  if (request.seed !== undefined) {
    // int64 arrives as a bigint; JSON has no exact form for integers beyond 2^53, and a
    // silently rounded seed would defeat its purpose (reproducible sampling).
    if (request.seed > maxExactSeed || request.seed < -maxExactSeed) {
      const range = `${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}`;
      bad.invalid("seed", `must be between ${range} for provider ${options.provider} (openai)`);
    } else {
      body.seed = Number(request.seed);
    }
  }
  if (request.presencePenalty !== undefined) body.presence_penalty = request.presencePenalty;
  if (request.frequencyPenalty !== undefined) body.frequency_penalty = request.frequencyPenalty;
  if (request.topK !== undefined) bad.unsupported("top_k");

  if (request.tools.length > 0) {
    const tools: ChatTool[] = new Array(request.tools.length);
    for (let i = 0; i < request.tools.length; i++) {
      const tool = request.tools[i]!;
      const fn: ChatTool["function"] = { name: tool.name };
      if (tool.description !== "") fn.description = tool.description;
      // Unset parameters means "no arguments": OpenAI reads an absent schema the same way.
      if (tool.parameters !== undefined) fn.parameters = tool.parameters;
      if (tool.strict !== undefined) fn.strict = tool.strict;
      tools[i] = { type: "function", function: fn };
    }
    body.tools = tools;
  }

  const choice = request.toolChoice?.choice;
  if (choice?.case === "mode") {
    const mode = toolChoiceModes[choice.value];
    // Without tools OpenAI rejects `tool_choice` outright; AUTO and NONE then mean what the
    // absence means, so they are dropped (REQUIRED without tools is the service's error).
    if (mode !== undefined && (request.tools.length > 0 || mode === "required")) body.tool_choice = mode;
  } else if (choice?.case === "toolName") {
    body.tool_choice = { type: "function", function: { name: choice.value } };
  }
  // OpenAI also rejects `parallel_tool_calls` without tools, where it has no meaning anyway.
  if (request.parallelToolCalls !== undefined && request.tools.length > 0) {
    body.parallel_tool_calls = request.parallelToolCalls;
  }

  const format = request.responseFormat?.format;
  if (format?.case === "text") {
    body.response_format = { type: "text" };
  } else if (format?.case === "jsonObject") {
    body.response_format = { type: "json_object" };
  } else if (format?.case === "jsonSchema") {
    const spec = format.value;
    const jsonSchema: { name: string; description?: string; schema?: JsonObject; strict?: boolean } = { name: spec.name };
    if (spec.description !== "") jsonSchema.description = spec.description;
    if (spec.schema !== undefined) jsonSchema.schema = spec.schema;
    if (spec.strict !== undefined) jsonSchema.strict = spec.strict;
    body.response_format = { type: "json_schema", json_schema: jsonSchema };
  }

  if (options.stream) {
    body.stream = true;
    // Without it OpenAI streams no usage at all; with it, usage arrives in one last chunk
    // with `choices: []` after the finish_reason chunk (stream.ts holds `done` for it).
    body.stream_options = { include_usage: true };
  }
  // Not sent: `n` (OpenAI's default is 1, the only value Sluice supports: the contract has
  // one message per response), `metadata` (the caller's labels stay in the gateway), `cache` and
  // `idempotency_key` (how the gateway serves the call).

  if (violations.length > 0) throw invalidArgument(violations);
  return body;
}

const toolChoiceModes: Readonly<Record<number, "auto" | "none" | "required" | undefined>> = {
  [ToolChoiceMode.AUTO]: "auto",
  [ToolChoiceMode.NONE]: "none",
  [ToolChoiceMode.REQUIRED]: "required",
};

/** Collects what is wrong with a request, so that one error names every bad field. */
interface Violations {
  /** A setting this provider lacks; `what` prefixes the description, e.g. "images in tool messages are ". */
  unsupported(field: string, what?: string): void;
  invalid(field: string, description: string, reason?: Reason): void;
}

function translateMessage(message: Message, at: string, bad: Violations): ChatMessage {
  switch (message.role) {
    case Role.SYSTEM: {
      const out: ChatMessage = { role: "system", content: textContent(message.content, at, "system", bad) };
      if (message.name !== "") out.name = message.name;
      return out;
    }
    case Role.USER: {
      const out: ChatMessage = { role: "user", content: userContent(message.content, at, bad) };
      if (message.name !== "") out.name = message.name;
      return out;
    }
    case Role.ASSISTANT: {
      // OpenAI's own assistant messages carry `content: null` beside tool calls; echoing
      // that shape is what every compatible server accepts.
      const content = message.content.length === 0 ? null : textContent(message.content, at, "assistant", bad);
      const out: ChatMessage = { role: "assistant", content };
      if (message.name !== "") out.name = message.name;
      if (message.toolCalls.length > 0) {
        const calls: ChatToolCall[] = new Array(message.toolCalls.length);
        for (let j = 0; j < message.toolCalls.length; j++) {
          const call = message.toolCalls[j]!;
          calls[j] = { id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } };
        }
        out.tool_calls = calls;
      }
      return out;
    }
    case Role.TOOL:
      // Tool messages have no `name` on OpenAI; the contract says names go only to providers
      // that support them, so it is dropped rather than rejected.
      return {
        role: "tool",
        tool_call_id: message.toolCallId,
        content: textContent(message.content, at, "tool", bad),
      };
    default:
      // The service rejects unknown roles first; this guards direct use of the adapter.
      bad.invalid(`${at}.role`, `unknown role ${message.role}`);
      return { role: "user", content: "" };
  }
}

/**
 * Text-only content (system, assistant, tool). A single text part goes as a plain string:
 * it is the form every OpenAI-compatible server accepts; several parts keep their
 * boundaries as an array of text parts.
 */
function textContent(parts: readonly ContentPart[], at: string, role: string, bad: Violations): string | ChatTextPart[] {
  if (parts.length === 1 && parts[0]!.part.case === "text") return parts[0]!.part.value;
  const out: ChatTextPart[] = [];
  for (let j = 0; j < parts.length; j++) {
    const part = parts[j]!.part;
    if (part.case === "text") out.push({ type: "text", text: part.value });
    else if (part.case === "image") bad.unsupported(`${at}.content[${j}].image`, `images in ${role} messages are `);
  }
  return out.length === 0 ? "" : out;
}

function userContent(parts: readonly ContentPart[], at: string, bad: Violations): string | ChatContentPart[] {
  if (parts.length === 1 && parts[0]!.part.case === "text") return parts[0]!.part.value;
  const out: ChatContentPart[] = [];
  for (let j = 0; j < parts.length; j++) {
    const part = parts[j]!.part;
    if (part.case === "text") {
      out.push({ type: "text", text: part.value });
    } else if (part.case === "image") {
      const image = imagePart(part.value, `${at}.content[${j}].image`, bad);
      if (image !== undefined) out.push(image);
    }
  }
  return out.length === 0 ? "" : out;
}

function imagePart(image: Image, at: string, bad: Violations): ChatImagePart | undefined {
  let url: string;
  switch (image.source.case) {
    case "url":
      url = image.source.value;
      break;
    case "data":
      if (!imageMediaTypes.has(image.mediaType)) {
        bad.invalid(`${at}.media_type`, "required with data: image/png, image/jpeg, image/gif or image/webp");
        return undefined;
      }
      // OpenAI takes inline images only as data: URLs.
      url = `data:${image.mediaType};base64,${toBase64(image.source.value)}`;
      break;
    default:
      bad.invalid(at, "set url or data", reasons.requiredField);
      return undefined;
  }
  const detail = imageDetails[image.detail];
  return { type: "image_url", image_url: detail === undefined ? { url } : { url, detail } };
}

function toBase64(bytes: Uint8Array): string {
  // A view, not a copy: the image bytes can be megabytes.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
