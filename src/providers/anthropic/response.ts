import { create } from "@bufbuild/protobuf";
import { CompleteResponseSchema, type CompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import {
  ContentPartSchema,
  MessageSchema,
  Role,
  ToolCallSchema,
  type ContentPart,
  type ToolCall,
} from "../../../gen/sluice/v1/chat_pb.js";
import { emptyUsage, finishReasonOf, foldUsage, toUsage } from "./usage.js";
import { isObject, type WireFailures } from "./wire.js";

/**
 * Translates a Messages API `message` body into a CompleteResponse. Pure.
 *
 * Text blocks become text parts (one each, in order); `tool_use` blocks become tool
 * calls whose `arguments` is the input re-serialised; `thinking` text becomes
 * `reasoning` (several thinking blocks are joined without a separator, exactly as a
 * caller concatenating the stream's reasoning deltas gets them). Blocks Sluice has no
 * field for (redacted_thinking, server tools and their results, compaction, …) are
 * skipped, as the API asks clients to do with types they do not know.
 */
export function fromAnthropicMessage(body: unknown, wire: WireFailures): CompleteResponse {
  if (!isObject(body)) throw wire.malformed("the message is not a JSON object");
  const { id, model, content } = body;
  if (typeof id !== "string" || typeof model !== "string" || !Array.isArray(content)) {
    throw wire.malformed("the message lacks id, model or content");
  }

  const parts: ContentPart[] = [];
  const toolCalls: ToolCall[] = [];
  let reasoning = "";
  for (const block of content) {
    if (!isObject(block)) continue;
    switch (block["type"]) {
      case "text":
        if (typeof block["text"] === "string") {
          parts.push(create(ContentPartSchema, { part: { case: "text", value: block["text"] } }));
        }
        break;
      case "tool_use": {
        const { id: callId, name, input } = block;
        if (typeof callId !== "string" || typeof name !== "string") {
          throw wire.malformed("a tool_use block lacks id or name");
        }
        toolCalls.push(create(ToolCallSchema, { id: callId, name, arguments: JSON.stringify(input ?? {}) }));
        break;
      }
      case "thinking":
        if (typeof block["thinking"] === "string") reasoning += block["thinking"];
        break;
      default:
        break;
    }
  }

  const usage = emptyUsage();
  foldUsage(usage, body["usage"]);
  return create(CompleteResponseSchema, {
    id,
    model,
    provider: wire.provider,
    message: create(MessageSchema, { role: Role.ASSISTANT, content: parts, toolCalls, reasoning }),
    finishReason: finishReasonOf(body["stop_reason"]),
    usage: toUsage(usage),
  });
}
