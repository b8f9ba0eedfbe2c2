import type { CompleteRequest } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role, ToolChoiceMode, type Message } from "../../../gen/sluice/v1/chat_pb.js";
import { invalidArgument, type FieldViolation } from "../../errors/gateway-error.js";
import type { MessageParam, MessagesRequest, RequestBlock, ToolChoiceParam, ToolParam, ToolResultBlockParam } from "./wire.js";
import { reasons } from "../../errors/reasons.js";
import { contentBlocks, toolResultBlock, toolUseBlock } from "./content-blocks.js";

/**
 * `max_tokens` when neither the request nor the deployment sets one (Anthropic requires
 * it). 4096 is the largest output every Claude model accepts (the Claude 3 models stop
 * there; a larger value is a 400 on them), so the fallback can never be the reason a
 * request fails, while it is ample for a chat answer. Deployments that want long
 * answers set `maxOutputTokens`. Tested in request.test.ts ("max_tokens").
 */
export const fallbackMaxOutputTokens = 4096;

/** Media types the Messages API accepts for base64 images. */

export interface AnthropicRequestOptions {
  /** Configured provider name, named in INVALID_ARGUMENT messages. */
  readonly provider: string;
  /** The deployment's upstream model id. */
  readonly model: string;
  readonly defaultMaxOutputTokens?: number | undefined;
  readonly stream: boolean;
}

/**
 * Translates a CompleteRequest into a Messages API body. Pure: never mutates `request`
 * (it is re-run on every retry), though the result may share read-only sub-objects with
 * it (tool schemas). Everything the provider cannot honour is collected and thrown as
 * one INVALID_ARGUMENT naming each field, before anything is sent.
 *
 * Conversation shape (request.test.ts "alternation"):
 * - every ROLE_SYSTEM message goes to top-level `system`, wherever it stood;
 * - consecutive messages that map to the same Anthropic role are merged into one, since
 *   the API wants user/assistant turns to alternate; ROLE_TOOL messages become user-role
 *   `tool_result` blocks, and within a user turn those come first (the API rejects a
 *   tool_result after other content), other blocks keep their order;
 * - a conversation that starts with an assistant message is sent as is: the first-party
 *   API accepts it (anthropic-sdk-typescript#622), so the gateway does not forbid what
 *   the provider allows nor invent a user turn; an endpoint that refuses it answers 400,
 *   which reaches the caller as INVALID_ARGUMENT with the provider's message.
 */
export function toAnthropicRequest(request: CompleteRequest, options: AnthropicRequestOptions): MessagesRequest {
  const violations: FieldViolation[] = [];
  const unsupported = (field: string, what: string): void => {
    violations.push({
      field,
      description: `${what} is not supported by provider ${options.provider} (Anthropic)`,
      reason: reasons.unsupportedByProvider,
    });
  };

  if (request.seed !== undefined) unsupported("seed", "seed");
  if (request.presencePenalty !== undefined) unsupported("presence_penalty", "presence_penalty");
  if (request.frequencyPenalty !== undefined) unsupported("frequency_penalty", "frequency_penalty");
  if (request.temperature !== undefined && (request.temperature < 0 || request.temperature > 1)) {
    violations.push({
      field: "temperature",
      description: `must be between 0 and 1 for provider ${options.provider} (Anthropic)`,
    });
  }
  if (request.maxOutputTokens === 0) {
    violations.push({ field: "max_output_tokens", description: "must be at least 1 when set" });
  }

  const { system, messages } = translateConversation(request.messages, violations);

  const body: MessagesRequest = {
    model: options.model,
    max_tokens: request.maxOutputTokens || options.defaultMaxOutputTokens || fallbackMaxOutputTokens,
    messages,
    stream: options.stream,
  };
  if (system !== undefined) body.system = system;
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.topP !== undefined) body.top_p = request.topP;
  if (request.topK !== undefined) body.top_k = request.topK;
  if (request.stop.length > 0) body.stop_sequences = request.stop.slice();

  const tools = request.tools.map(translateTool);
  if (tools.length > 0) body.tools = tools;
  const toolChoice = translateToolChoice(request, violations);
  if (toolChoice !== undefined) body.tool_choice = toolChoice;

  const format = request.responseFormat?.format;
  if (format?.case === "jsonObject") {
    // Anthropic's structured output needs a schema (closed objects); "any JSON object"
    // has no faithful equivalent, and dropping it would silently return prose.
    unsupported("response_format.json_object", "response_format json_object (use json_schema)");
  } else if (format?.case === "jsonSchema") {
    const schema = format.value.schema;
    if (schema === undefined) {
      violations.push({ field: "response_format.json_schema.schema", description: "is required" });
    } else {
      // Structured outputs, GA on the Messages API (no beta header). `name`,
      // `description` and `strict` have no counterpart: Anthropic always enforces the
      // schema, which is what strict asks for. Models without the feature answer 400.
      body.output_config = { format: { type: "json_schema", schema } };
    }
  }

  if (violations.length > 0) throw invalidArgument(violations);
  return body;
}

/** A user turn keeps tool results apart so they can lead its content. */
interface Turn {
  role: "user" | "assistant";
  results: ToolResultBlockParam[];
  blocks: RequestBlock[];
}

function translateConversation(
  input: readonly Message[],
  violations: FieldViolation[],
): { system: string | undefined; messages: MessageParam[] } {
  const systemTexts: string[] = [];
  const turns: Turn[] = [];
  let last: Turn | undefined;
  const turnFor = (role: "user" | "assistant"): Turn => {
    if (last === undefined || last.role !== role) {
      last = { role, results: [], blocks: [] };
      turns.push(last);
    }
    return last;
  };

  for (let i = 0; i < input.length; i++) {
    const message = input[i]!;
    const at = `messages[${i}]`;
    if (message.toolCalls.length > 0 && message.role !== Role.ASSISTANT) {
      violations.push({ field: `${at}.tool_calls`, description: "only assistant messages may carry tool calls" });
    }
    switch (message.role) {
      case Role.SYSTEM:
        systemTexts.push(systemText(message, at, violations));
        break;
      case Role.USER: {
        const before = violations.length;
        const blocks = contentBlocks(message.content, at, violations, true);
        // Parts already rejected are named themselves; "empty" is for nothing at all.
        if (blocks.length === 0 && violations.length === before) {
          violations.push({ field: `${at}.content`, description: "must not be empty" });
        }
        turnFor("user").blocks.push(...blocks);
        break;
      }
      case Role.ASSISTANT: {
        const before = violations.length;
        const blocks: RequestBlock[] = contentBlocks(message.content, at, violations, false);
        message.toolCalls.forEach((call, j) => {
          const block = toolUseBlock(call.id, call.name, call.arguments, `${at}.tool_calls[${j}]`, violations);
          if (block !== undefined) blocks.push(block);
        });
        if (blocks.length === 0 && message.toolCalls.length === 0 && violations.length === before) {
          violations.push({ field: `${at}.content`, description: "must not be empty without tool_calls" });
        }
        turnFor("assistant").blocks.push(...blocks);
        break;
      }
      case Role.TOOL:
        turnFor("user").results.push(toolResultBlock(message, at, violations));
        break;
      default:
        violations.push({ field: `${at}.role`, description: "must be set" });
    }
  }

  if (turns.length === 0 && violations.length === 0) {
    violations.push({ field: "messages", description: "must hold at least one user or assistant message" });
  }
  const messages = turns.map(toMessageParam);
  // Several system messages (and several text parts of one) are joined with a blank
  // line: the boundary a reader of the prompt would expect, whatever the source split.
  const system = systemTexts.length > 0 ? systemTexts.join("\n\n") : undefined;
  return { system, messages };
}

function toMessageParam(turn: Turn): MessageParam {
  const content = turn.results.length > 0 ? [...turn.results, ...turn.blocks] : turn.blocks;
  // A lone text block travels as a plain string, as the SDKs send it (the nock recordings).
  const only = content.length === 1 ? content[0]! : undefined;
  return { role: turn.role, content: only?.type === "text" ? only.text : content };
}

function systemText(message: Message, at: string, violations: FieldViolation[]): string {
  const texts: string[] = [];
  message.content.forEach((part, j) => {
    if (part.part.case === "text") texts.push(part.part.value);
    else violations.push({ field: `${at}.content[${j}]`, description: "a system message may hold only text" });
  });
  return texts.join("\n\n");
}

function translateTool(tool: CompleteRequest["tools"][number]): ToolParam {
  const out: ToolParam = {
    name: tool.name,
    // Unset parameters mean "no arguments"; the API requires an object schema.
    input_schema: tool.parameters ?? { type: "object", properties: {} },
  };
  if (tool.description !== "") out.description = tool.description;
  // Strict tool use is GA on the Messages API; models without it answer 400.
  if (tool.strict === true) out.strict = true;
  return out;
}

function translateToolChoice(request: CompleteRequest, violations: FieldViolation[]): ToolChoiceParam | undefined {
  const choice = request.toolChoice?.choice;
  const hasTools = request.tools.length > 0;
  const serial = request.parallelToolCalls === false;
  let out: ToolChoiceParam | undefined;
  if (choice?.case === "toolName") {
    if (!request.tools.some((t) => t.name === choice.value)) {
      violations.push({ field: "tool_choice.tool_name", description: `names no tool in tools: ${choice.value}` });
      return undefined;
    }
    out = { type: "tool", name: choice.value };
  } else if (choice?.case === "mode") {
    switch (choice.value) {
      case ToolChoiceMode.AUTO:
        out = { type: "auto" };
        break;
      case ToolChoiceMode.REQUIRED:
        if (!hasTools) {
          violations.push({ field: "tool_choice.mode", description: "TOOL_CHOICE_MODE_REQUIRED needs tools" });
          return undefined;
        }
        out = { type: "any" };
        break;
      case ToolChoiceMode.NONE:
        out = { type: "none" };
        break;
      default:
        break;
    }
  }
  // Without tools there is nothing to choose, and the API rejects a tool_choice then.
  if (!hasTools) return undefined;
  if (serial) {
    // `none` calls no tool at all, so it has no parallel switch.
    if (out === undefined) out = { type: "auto", disable_parallel_tool_use: true };
    else if (out.type !== "none") out.disable_parallel_tool_use = true;
  }
  return out;
}
