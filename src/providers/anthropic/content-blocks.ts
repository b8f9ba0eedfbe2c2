import type { JsonObject } from "@bufbuild/protobuf";
import type { ContentPart, Image, Message } from "../../../gen/sluice/v1/chat_pb.js";
import type { FieldViolation } from "../../errors/gateway-error.js";
import type { ImageBlockParam, RequestBlock, TextBlockParam, ToolResultBlockParam } from "./wire.js";

/*
 * The content of Anthropic request messages: text, image, tool_use and tool_result blocks
 * translated from proto content parts and tool calls. Pure; every part either maps or
 * adds a violation naming its field.
 */

/** The image types the Messages API accepts. */
const imageMediaTypes = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);

/**
 * Text and image parts as blocks. Empty text parts are dropped: the API rejects empty
 * text blocks, and an empty part adds nothing to the prompt.
 */
export function contentBlocks(
  parts: readonly ContentPart[],
  at: string,
  violations: FieldViolation[],
  imagesAllowed: boolean,
): Array<TextBlockParam | ImageBlockParam> {
  const blocks: Array<TextBlockParam | ImageBlockParam> = [];
  for (let j = 0; j < parts.length; j++) {
    const part = parts[j]!.part;
    if (part.case === "text") {
      if (part.value.length > 0) blocks.push({ type: "text", text: part.value });
    } else if (part.case === "image") {
      if (!imagesAllowed) {
        violations.push({
          field: `${at}.content[${j}].image`,
          description: "images are accepted only in user and tool messages",
        });
        continue;
      }
      const block = imageBlock(part.value, `${at}.content[${j}].image`, violations);
      if (block !== undefined) blocks.push(block);
    } else {
      violations.push({ field: `${at}.content[${j}]`, description: "must hold text or an image" });
    }
  }
  return blocks;
}

const dataUrl = /^data:([^;,]+)((?:;[^;,]*)*),/;

/**
 * An image block. `detail` is a resolution hint with no Anthropic counterpart (the API
 * sizes images itself); it is ignored, as the proto allows for a hint.
 */
function imageBlock(image: Image, at: string, violations: FieldViolation[]): ImageBlockParam | undefined {
  const source = image.source;
  if (source.case === "data") {
    if (!imageMediaTypes.has(image.mediaType)) {
      violations.push({ field: `${at}.media_type`, description: mediaTypeProblem(image.mediaType) });
      return undefined;
    }
    return {
      type: "image",
      source: { type: "base64", media_type: image.mediaType, data: Buffer.from(source.value).toString("base64") },
    };
  }
  if (source.case === "url") {
    const url = source.value;
    const match = dataUrl.exec(url);
    if (match !== null) {
      const mediaType = match[1]!.toLowerCase();
      if (!match[2]!.split(";").includes("base64")) {
        violations.push({ field: `${at}.url`, description: "a data: URL must be base64-encoded" });
        return undefined;
      }
      if (!imageMediaTypes.has(mediaType)) {
        violations.push({ field: `${at}.url`, description: mediaTypeProblem(mediaType) });
        return undefined;
      }
      return { type: "image", source: { type: "base64", media_type: mediaType, data: url.slice(match[0].length) } };
    }
    if (url.startsWith("https://") || url.startsWith("http://")) {
      return { type: "image", source: { type: "url", url } };
    }
    violations.push({ field: `${at}.url`, description: "must be an https: or a data: URL" });
    return undefined;
  }
  violations.push({ field: at, description: "needs a url or data" });
  return undefined;
}

function mediaTypeProblem(mediaType: string): string {
  return `media type ${JSON.stringify(mediaType)} is not one of image/jpeg, image/png, image/gif, image/webp`;
}

export function toolUseBlock(
  id: string,
  name: string,
  args: string,
  at: string,
  violations: FieldViolation[],
): RequestBlock | undefined {
  if (id === "") violations.push({ field: `${at}.id`, description: "is required" });
  if (name === "") violations.push({ field: `${at}.name`, description: "is required" });
  let input: unknown;
  if (args.trim() === "") {
    // No-argument calls are often echoed back with empty arguments; {} is their input.
    input = {};
  } else {
    try {
      input = JSON.parse(args);
    } catch {
      violations.push({ field: `${at}.arguments`, description: "is not valid JSON" });
      return undefined;
    }
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    violations.push({ field: `${at}.arguments`, description: "must be a JSON object" });
    return undefined;
  }
  return { type: "tool_use", id, name, input: input as JsonObject };
}

export function toolResultBlock(message: Message, at: string, violations: FieldViolation[]): ToolResultBlockParam {
  if (message.toolCallId === "") violations.push({ field: `${at}.tool_call_id`, description: "is required" });
  const block: ToolResultBlockParam = { type: "tool_result", tool_use_id: message.toolCallId };
  const parts = contentBlocks(message.content, at, violations, true);
  if (parts.length === 0) return block;
  // One text part travels as a plain string, as the SDKs send results; several parts
  // keep their boundaries as blocks.
  const only = parts.length === 1 ? parts[0]! : undefined;
  block.content = only?.type === "text" ? only.text : parts;
  return block;
}
