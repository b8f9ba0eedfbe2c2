import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role, ToolChoiceMode } from "../../gen/sluice/v1/chat_pb.js";
import { invalidArgument, type FieldViolation } from "../errors/gateway-error.js";
import { reasons, type Reason } from "../errors/reasons.js";

/** Limits the contract documents in chat_service.proto; checked before any routing. */
export const requestLimits = {
  maxStopSequences: 4,
  maxMetadataEntries: 16,
  maxMetadataKeyLength: 64,
  maxMetadataValueLength: 512,
  maxToolNameLength: 64,
} as const;

const toolNamePattern = /^[a-zA-Z0-9_-]+$/;
const imageMediaTypes = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/**
 * Checks a CompleteRequest against the contract, provider-independently, and throws
 * INVALID_ARGUMENT with a google.rpc.BadRequest listing every bad field (so a caller
 * fixes them all at once). Provider-specific limits are the adapters' to enforce.
 */
export function validateCompleteRequest(request: CompleteRequest): void {
  const violations: FieldViolation[] = [];
  const bad = (field: string, description: string, reason: Reason = reasons.invalidField): void => {
    violations.push({ field, description, reason });
  };

  if (request.model === "") bad("model", "required: a model alias (see ModelService.ListModels)", reasons.requiredField);
  if (request.messages.length === 0) bad("messages", "required: at least one message", reasons.requiredField);

  request.messages.forEach((message, i) => {
    const at = `messages[${i}]`;
    if (message.role === Role.UNSPECIFIED) {
      bad(`${at}.role`, "required: ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL", reasons.requiredField);
    } else if (!(message.role in Role)) {
      bad(`${at}.role`, `unknown role ${message.role}`);
    }
    if (message.toolCalls.length > 0 && message.role !== Role.ASSISTANT) {
      bad(`${at}.tool_calls`, "only assistant messages carry tool calls");
    }
    if (message.role === Role.TOOL && message.toolCallId === "") {
      bad(`${at}.tool_call_id`, "required on tool messages: the id of the call answered", reasons.requiredField);
    }
    if (message.role !== Role.TOOL && message.toolCallId !== "") {
      bad(`${at}.tool_call_id`, "only tool messages answer a tool call");
    }
    if (message.content.length === 0 && !(message.role === Role.ASSISTANT && message.toolCalls.length > 0)) {
      bad(`${at}.content`, "required: at least one content part", reasons.requiredField);
    }
    message.content.forEach((part, j) => {
      const partAt = `${at}.content[${j}]`;
      switch (part.part.case) {
        case "text":
          break;
        case "image": {
          const image = part.part.value;
          if (message.role === Role.SYSTEM || message.role === Role.ASSISTANT) {
            bad(`${partAt}.image`, "images are accepted in user and tool messages only");
          }
          if (image.source.case === undefined) {
            bad(`${partAt}.image`, "set url or data", reasons.requiredField);
          } else if (image.source.case === "data") {
            if (image.source.value.length === 0) bad(`${partAt}.image.data`, "empty image", reasons.requiredField);
            if (!imageMediaTypes.has(image.mediaType)) {
              bad(`${partAt}.image.media_type`, "required with data: image/png, image/jpeg, image/gif or image/webp");
            }
          } else if (!/^(https?:|data:image\/)/i.test(image.source.value)) {
            bad(`${partAt}.image.url`, "must be an http(s) URL or a data:image/… URL");
          }
          break;
        }
        default:
          bad(partAt, "empty content part: set text or image", reasons.requiredField);
      }
    });
    message.toolCalls.forEach((call, j) => {
      if (call.id === "") bad(`${at}.tool_calls[${j}].id`, "required", reasons.requiredField);
      if (call.name === "") bad(`${at}.tool_calls[${j}].name`, "required", reasons.requiredField);
    });
  });

  checkRange(request.temperature, "temperature", 0, 2, bad);
  checkRange(request.topP, "top_p", 0, 1, bad);
  checkRange(request.presencePenalty, "presence_penalty", -2, 2, bad);
  checkRange(request.frequencyPenalty, "frequency_penalty", -2, 2, bad);
  if (request.maxOutputTokens === 0) bad("max_output_tokens", "must be at least 1 (leave unset for the default)");
  if (request.topK === 0) bad("top_k", "must be at least 1 (leave unset for the default)");

  if (request.stop.length > requestLimits.maxStopSequences) {
    bad("stop", `at most ${requestLimits.maxStopSequences} stop sequences`);
  }
  request.stop.forEach((stop, i) => {
    if (stop === "") bad(`stop[${i}]`, "empty stop sequence");
  });

  const toolNames = new Set<string>();
  request.tools.forEach((tool, i) => {
    if (tool.name === "") {
      bad(`tools[${i}].name`, "required", reasons.requiredField);
    } else if (tool.name.length > requestLimits.maxToolNameLength || !toolNamePattern.test(tool.name)) {
      bad(`tools[${i}].name`, "letters, digits, _ and - only, at most 64 characters");
    } else if (toolNames.has(tool.name)) {
      bad(`tools[${i}].name`, `duplicate tool name "${tool.name}"`);
    }
    toolNames.add(tool.name);
  });
  const choice = request.toolChoice?.choice;
  if (choice?.case === "toolName" && !toolNames.has(choice.value)) {
    bad("tool_choice.tool_name", "must name one of the request's tools");
  }
  if (choice?.case === "mode" && choice.value === ToolChoiceMode.REQUIRED && request.tools.length === 0) {
    bad("tool_choice.mode", "TOOL_CHOICE_MODE_REQUIRED needs at least one tool");
  }

  const format = request.responseFormat?.format;
  if (format?.case === "jsonSchema") {
    if (format.value.name === "" || !toolNamePattern.test(format.value.name)) {
      bad("response_format.json_schema.name", "required: letters, digits, _ and - only", reasons.requiredField);
    }
    if (format.value.schema === undefined) {
      bad("response_format.json_schema.schema", "required: the JSON Schema", reasons.requiredField);
    }
  }

  const metadataKeys = Object.keys(request.metadata);
  if (metadataKeys.length > requestLimits.maxMetadataEntries) {
    bad("metadata", `at most ${requestLimits.maxMetadataEntries} entries`);
  }
  for (const key of metadataKeys) {
    if (key.length === 0 || key.length > requestLimits.maxMetadataKeyLength) {
      bad("metadata", `keys must be 1 to ${requestLimits.maxMetadataKeyLength} characters`);
      break;
    }
    if (request.metadata[key]!.length > requestLimits.maxMetadataValueLength) {
      bad(`metadata[${JSON.stringify(key)}]`, `at most ${requestLimits.maxMetadataValueLength} characters`);
    }
  }

  if (violations.length > 0) throw invalidArgument(violations);
}

function checkRange(
  value: number | undefined,
  field: string,
  min: number,
  max: number,
  bad: (field: string, description: string) => void,
): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < min || value > max) bad(field, `must be between ${min} and ${max}`);
}
