import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role, ToolChoiceMode, type Message } from "../../gen/sluice/v1/chat_pb.js";
import { reasons } from "../errors/reasons.js";
import { ViolationList } from "./violation-list.js";

/**
 * Limits the contract documents in chat_service.proto (CompleteRequest); checked before any
 * routing. The counts are checked before any element is looked at: a request over one gets
 * that violation alone (reason REQUEST_LIMIT_EXCEEDED), whatever else is wrong with it.
 */
export const requestLimits = {
  /** Messages per request (OpenAI's own limit). */
  maxMessages: 2048,
  /** Content parts per message. */
  maxContentParts: 256,
  /** Tool calls per message. */
  maxToolCalls: 128,
  /** Tools per request (OpenAI's own limit). */
  maxTools: 128,
  maxStopSequences: 4,
  maxMetadataEntries: 16,
  maxMetadataKeyLength: 64,
  maxMetadataValueLength: 512,
  maxToolNameLength: 64,
} as const;

const toolNamePattern = /^[a-zA-Z0-9_-]+$/;
const imageUrlPattern = /^(https?:|data:image\/)/i;
const imageMediaTypes = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const tooManyParts = `at most ${requestLimits.maxContentParts} content parts per message`;
const tooManyCalls = `at most ${requestLimits.maxToolCalls} tool calls per message`;

/**
 * Checks a CompleteRequest against the contract, provider-independently, and throws
 * INVALID_ARGUMENT with a google.rpc.BadRequest listing the bad fields (so a caller fixes
 * them at once) — the first few, counting the rest (ViolationList). Provider-specific limits
 * are the adapters' to enforce. Runs on every call: a valid request costs a walk over its
 * elements and no string or object per element.
 */
export function validateCompleteRequest(request: CompleteRequest): void {
  const v = new ViolationList();
  checkCounts(request, v);
  const countError = v.toError();
  if (countError !== undefined) throw countError;

  if (request.model === "") v.add("model", "required: a model alias (see ModelService.ListModels)", reasons.requiredField);
  const messages = request.messages;
  if (messages.length === 0) v.add("messages", "required: at least one message", reasons.requiredField);
  for (let i = 0; i < messages.length; i++) checkMessage(messages[i]!, i, v);

  checkRange(request.temperature, "temperature", 0, 2, v);
  checkRange(request.topP, "top_p", 0, 1, v);
  checkRange(request.presencePenalty, "presence_penalty", -2, 2, v);
  checkRange(request.frequencyPenalty, "frequency_penalty", -2, 2, v);
  if (request.maxOutputTokens === 0) v.add("max_output_tokens", "must be at least 1 (leave unset for the default)");
  if (request.topK === 0) v.add("top_k", "must be at least 1 (leave unset for the default)");

  for (let i = 0; i < request.stop.length; i++) {
    if (request.stop[i] === "") v.item("stop", i, "", "empty stop sequence");
  }

  const tools = request.tools;
  const toolNames = tools.length > 0 ? new Set<string>() : undefined;
  for (let i = 0; i < tools.length; i++) {
    const name = tools[i]!.name;
    if (name === "") {
      v.item("tools", i, ".name", "required", reasons.requiredField);
    } else if (name.length > requestLimits.maxToolNameLength || !toolNamePattern.test(name)) {
      v.item("tools", i, ".name", "letters, digits, _ and - only, at most 64 characters");
    } else if (toolNames!.has(name)) {
      v.item("tools", i, ".name", v.recording ? `duplicate tool name "${name}"` : "");
    }
    toolNames!.add(name);
  }
  const choice = request.toolChoice?.choice;
  if (choice?.case === "toolName" && toolNames?.has(choice.value) !== true) {
    v.add("tool_choice.tool_name", "must name one of the request's tools");
  }
  if (choice?.case === "mode" && choice.value === ToolChoiceMode.REQUIRED && tools.length === 0) {
    v.add("tool_choice.mode", "TOOL_CHOICE_MODE_REQUIRED needs at least one tool");
  }

  const format = request.responseFormat?.format;
  if (format?.case === "jsonSchema") {
    if (format.value.name === "" || !toolNamePattern.test(format.value.name)) {
      v.add("response_format.json_schema.name", "required: letters, digits, _ and - only", reasons.requiredField);
    }
    if (format.value.schema === undefined) {
      v.add("response_format.json_schema.schema", "required: the JSON Schema", reasons.requiredField);
    }
  }

  const metadata = request.metadata;
  for (const key in metadata) {
    if (key.length === 0 || key.length > requestLimits.maxMetadataKeyLength) {
      const reason = key.length === 0 ? reasons.invalidField : reasons.requestLimitExceeded;
      v.add("metadata", `keys must be 1 to ${requestLimits.maxMetadataKeyLength} characters`, reason);
      break;
    }
    if (metadata[key]!.length > requestLimits.maxMetadataValueLength) {
      // The key is at most maxMetadataKeyLength here: the field path stays short.
      v.add(
        `metadata[${JSON.stringify(key)}]`,
        `at most ${requestLimits.maxMetadataValueLength} characters`,
        reasons.requestLimitExceeded,
      );
    }
  }

  const error = v.toError();
  if (error !== undefined) throw error;
}

/** The documented counts: integer comparisons, one per list (and two per message). */
function checkCounts(request: CompleteRequest, v: ViolationList): void {
  const messages = request.messages;
  if (messages.length > requestLimits.maxMessages) {
    v.add("messages", `at most ${requestLimits.maxMessages} messages (got ${messages.length})`, reasons.requestLimitExceeded);
  } else {
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      if (message.content.length > requestLimits.maxContentParts) {
        v.item("messages", i, ".content", tooManyParts, reasons.requestLimitExceeded);
      }
      if (message.toolCalls.length > requestLimits.maxToolCalls) {
        v.item("messages", i, ".tool_calls", tooManyCalls, reasons.requestLimitExceeded);
      }
    }
  }
  if (request.tools.length > requestLimits.maxTools) {
    v.add("tools", `at most ${requestLimits.maxTools} tools (got ${request.tools.length})`, reasons.requestLimitExceeded);
  }
  if (request.stop.length > requestLimits.maxStopSequences) {
    v.add("stop", `at most ${requestLimits.maxStopSequences} stop sequences`, reasons.requestLimitExceeded);
  }
  let entries = 0;
  for (const _ in request.metadata) {
    if (++entries > requestLimits.maxMetadataEntries) {
      v.add("metadata", `at most ${requestLimits.maxMetadataEntries} entries`, reasons.requestLimitExceeded);
      break;
    }
  }
}

function checkMessage(message: Message, i: number, v: ViolationList): void {
  const role = message.role;
  if (role === Role.UNSPECIFIED) {
    v.item("messages", i, ".role", "required: ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL", reasons.requiredField);
  } else if (!(role in Role)) {
    v.item("messages", i, ".role", v.recording ? `unknown role ${role}` : "");
  }
  const hasToolCalls = message.toolCalls.length > 0;
  if (hasToolCalls && role !== Role.ASSISTANT) {
    v.item("messages", i, ".tool_calls", "only assistant messages carry tool calls");
  }
  if (role === Role.TOOL && message.toolCallId === "") {
    v.item("messages", i, ".tool_call_id", "required on tool messages: the id of the call answered", reasons.requiredField);
  }
  if (role !== Role.TOOL && message.toolCallId !== "") {
    v.item("messages", i, ".tool_call_id", "only tool messages answer a tool call");
  }
  const content = message.content;
  if (content.length === 0 && !(role === Role.ASSISTANT && hasToolCalls)) {
    v.item("messages", i, ".content", "required: at least one content part", reasons.requiredField);
  }
  for (let j = 0; j < content.length; j++) {
    const part = content[j]!.part;
    if (part.case === "text") continue;
    if (part.case !== "image") {
      v.nested("messages", i, "content", j, "", "empty content part: set text or image", reasons.requiredField);
      continue;
    }
    const image = part.value;
    if (role === Role.SYSTEM || role === Role.ASSISTANT) {
      v.nested("messages", i, "content", j, ".image", "images are accepted in user and tool messages only");
    }
    if (image.source.case === undefined) {
      v.nested("messages", i, "content", j, ".image", "set url or data", reasons.requiredField);
    } else if (image.source.case === "data") {
      if (image.source.value.length === 0) {
        v.nested("messages", i, "content", j, ".image.data", "empty image", reasons.requiredField);
      }
      if (!imageMediaTypes.has(image.mediaType)) {
        const description = "required with data: image/png, image/jpeg, image/gif or image/webp";
        v.nested("messages", i, "content", j, ".image.media_type", description);
      }
    } else if (!imageUrlPattern.test(image.source.value)) {
      v.nested("messages", i, "content", j, ".image.url", "must be an http(s) URL or a data:image/… URL");
    }
  }
  const calls = message.toolCalls;
  for (let j = 0; j < calls.length; j++) {
    if (calls[j]!.id === "") v.nested("messages", i, "tool_calls", j, ".id", "required", reasons.requiredField);
    if (calls[j]!.name === "") v.nested("messages", i, "tool_calls", j, ".name", "required", reasons.requiredField);
  }
}

function checkRange(value: number | undefined, field: string, min: number, max: number, v: ViolationList): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < min || value > max) v.add(field, `must be between ${min} and ${max}`);
}
