import type { StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { doneEvent, reasoningEvent, startEvent, textEvent, toolCallEvent } from "../stream-events.js";
import type { SseEvent } from "../../transport/sse-parser.js";
import { streamErrorEvent } from "./errors.js";
import { emptyUsage, finishReasonOf, foldUsage, toUsage } from "./usage.js";
import { isObject, type WireFailures } from "./wire.js";

/** What a content block is to Sluice, by its position in the message. */
const textBlock = -1;
const thinkingBlock = -2;
const ignoredBlock = -3;
/** Block kinds: one of the constants above, or ≥ 0 for a tool_use (its tool call index). */
type BlockKind = number;

/**
 * Translates Anthropic's parsed SSE events into Sluice stream events, one by one as they
 * arrive (https://docs.claude.com/en/docs/build-with-claude/streaming).
 *
 * - `message_start` → `start` (id, model, provider); its usage is the prompt side.
 * - text / thinking deltas → `delta` / `reasoning_delta`; empty fragments are skipped.
 * - a `tool_use` block → a `tool_call_delta` carrying id and name (and empty arguments)
 *   at `content_block_start`, then one per non-empty `input_json_delta`. The index is the
 *   block's position among this turn's tool calls, not its content block index (a text
 *   block usually comes first). Fragments are forwarded untouched, never re-parsed: a
 *   turn cut by max_tokens leaves them incomplete, and the caller sees what was sent.
 * - `message_delta` → stop reason and running usage totals (see usage.ts foldUsage).
 * - `message_stop` → exactly one `done`, and the translation ends.
 * - `event: error` → throws an UpstreamError classified by the failure table.
 * - `ping`, `content_block_stop`, signature / citation deltas, unknown events and blocks
 *   of unknown types (server_tool_use, web_search_tool_result, compaction, fallback, …)
 *   are skipped; a delta is only read for the block kinds above, so a server tool's
 *   input_json_delta never looks like a caller's tool call.
 *
 * The events end without `message_stop` → throws streamCut: a stream that ends OK
 * always ends with `done`. Only the events that carry data Sluice uses are JSON-parsed,
 * each exactly once.
 */
export async function* translateAnthropicStream(
  events: AsyncIterable<SseEvent>,
  wire: WireFailures,
): AsyncGenerator<StreamCompleteResponse> {
  let started = false;
  let stopReason: unknown;
  const usage = emptyUsage();
  const blocks: BlockKind[] = [];
  let toolCalls = 0;

  for await (const event of events) {
    let name = event.event;
    let data: Record<string, unknown> | undefined;
    if (name === "message") {
      // No `event:` line (Anthropic always sends one; a proxy might not): use data.type.
      data = parse(event, wire);
      name = typeof data["type"] === "string" ? data["type"] : "";
    }
    switch (name) {
      case "content_block_delta": {
        data ??= parse(event, wire);
        const kind = blocks[index(data, wire)];
        if (kind === undefined || kind === ignoredBlock) break;
        const delta = data["delta"];
        if (!isObject(delta)) throw wire.malformed("content_block_delta without delta");
        switch (delta["type"]) {
          case "text_delta":
            if (kind === textBlock) {
              const text = delta["text"];
              if (typeof text === "string" && text.length > 0) yield textEvent(text);
            }
            break;
          case "input_json_delta":
            if (kind >= 0) {
              const json = delta["partial_json"];
              if (typeof json === "string" && json.length > 0) yield toolCallEvent(kind, "", "", json);
            }
            break;
          case "thinking_delta":
            if (kind === thinkingBlock) {
              const thinking = delta["thinking"];
              if (typeof thinking === "string" && thinking.length > 0) yield reasoningEvent(thinking);
            }
            break;
          default:
            // signature_delta (only needed to send thinking back), citations_delta, …
            break;
        }
        break;
      }
      case "content_block_start": {
        data ??= parse(event, wire);
        if (!started) throw wire.malformed("content_block_start before message_start");
        const at = index(data, wire);
        const block = data["content_block"];
        if (!isObject(block)) throw wire.malformed("content_block_start without content_block");
        switch (block["type"]) {
          case "text": {
            blocks[at] = textBlock;
            const text = block["text"];
            if (typeof text === "string" && text.length > 0) yield textEvent(text);
            break;
          }
          case "thinking": {
            blocks[at] = thinkingBlock;
            const thinking = block["thinking"];
            if (typeof thinking === "string" && thinking.length > 0) yield reasoningEvent(thinking);
            break;
          }
          case "tool_use": {
            const { id, name: toolName, input } = block;
            if (typeof id !== "string" || typeof toolName !== "string") {
              throw wire.malformed("a tool_use block lacks id or name");
            }
            const callIndex = toolCalls++;
            blocks[at] = callIndex;
            // The input is `{}` at the start of a streamed block; should a provider ever
            // send it whole here, it is the first fragment of the arguments.
            const initial = isObject(input) && Object.keys(input).length > 0 ? JSON.stringify(input) : "";
            yield toolCallEvent(callIndex, id, toolName, initial);
            break;
          }
          default:
            blocks[at] = ignoredBlock;
            break;
        }
        break;
      }
      case "message_start": {
        data ??= parse(event, wire);
        if (started) throw wire.malformed("a second message_start");
        const message = data["message"];
        if (!isObject(message) || typeof message["id"] !== "string" || typeof message["model"] !== "string") {
          throw wire.malformed("message_start without message id and model");
        }
        foldUsage(usage, message["usage"]);
        started = true;
        yield startEvent(message["id"], message["model"], wire.provider);
        break;
      }
      case "message_delta": {
        data ??= parse(event, wire);
        const delta = data["delta"];
        if (isObject(delta) && "stop_reason" in delta) stopReason = delta["stop_reason"];
        foldUsage(usage, data["usage"]);
        break;
      }
      case "message_stop":
        if (!started) throw wire.malformed("message_stop before message_start");
        yield doneEvent(finishReasonOf(stopReason), toUsage(usage));
        return;
      case "error":
        throw streamErrorEvent(wire.provider, data ?? parseLoose(event));
      default:
        // ping, content_block_stop, and event types added after this was written.
        break;
    }
  }
  throw wire.streamCut(started ? "no message_stop" : "no message_start");
}

function parse(event: SseEvent, wire: WireFailures): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch {
    throw wire.malformed(`${event.event} event data is not JSON`);
  }
  if (!isObject(data)) throw wire.malformed(`${event.event} event data is not a JSON object`);
  return data;
}

/** An error event is reported as an error even when its body cannot be read. */
function parseLoose(event: SseEvent): unknown {
  try {
    return JSON.parse(event.data);
  } catch {
    return undefined;
  }
}

function index(data: Record<string, unknown>, wire: WireFailures): number {
  const at = data["index"];
  if (typeof at !== "number" || !Number.isInteger(at) || at < 0) throw wire.malformed("content block without index");
  return at;
}
