import type { StreamCompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { stopReasonName, usageObject } from "./response.js";

/** Anthropic's heartbeat: a `ping` event, sent while the model is silent so proxies keep the connection. */
export const ssePing = 'event: ping\ndata: {"type":"ping"}\n\n';

/** An error the encoder cannot express in Anthropic's event sequence (the lane ends the stream with `event: error`). */
export class StreamShapeError extends Error {}

const none = -1;

/**
 * The contract's stream events as the Messages API's server-sent events, one call's worth
 * (https://docs.claude.com/en/docs/build-with-claude/streaming):
 *
 * - `start` → exactly one `message_start` (empty content, usage zero: the prompt's counts
 *   come with `message_delta`, which the SDKs read as whole-message totals).
 * - `reasoning_delta` → `thinking_delta`s in a `thinking` block; `delta` → `text_delta`s in
 *   a `text` block; a tool call's first fragment opens a `tool_use` block (`input: {}`), its
 *   arguments are `input_json_delta`s. A block of another kind starting closes the open one
 *   (`content_block_stop`), so thinking never lands in a text block and blocks never nest.
 * - `done` → `content_block_stop` for the open block, `message_delta` (stop_reason, usage),
 *   `message_stop`.
 *
 * A fragment for a tool call whose block was already closed (fragments of parallel calls
 * interleaved, which Anthropic's format cannot say) throws StreamShapeError.
 */
export class MessageStreamEncoder {
  private open = none;
  private openKind: "text" | "thinking" | "tool" | undefined;
  private next = 0;
  /** Tool call index → its content block index. */
  private readonly toolBlocks = new Map<number, number>();
  private started = false;

  /** The SSE text for one event ("" for an event with nothing to say). */
  encode(event: StreamCompleteResponse): string {
    const e = event.event;
    switch (e.case) {
      case "start": {
        if (this.started) return "";
        this.started = true;
        const message = {
          id: e.value.id,
          type: "message",
          role: "assistant",
          model: e.value.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 0, output_tokens: 0 },
        };
        return frame("message_start", `{"type":"message_start","message":${JSON.stringify(message)}}`);
      }
      case "delta": {
        if (e.value.text === "") return "";
        const head = this.openKind === "text" ? "" : this.startBlock("text", '{"type":"text","text":""}');
        return head + this.blockDelta(`{"type":"text_delta","text":${JSON.stringify(e.value.text)}}`);
      }
      case "reasoningDelta": {
        if (e.value.text === "") return "";
        const head =
          this.openKind === "thinking" ? "" : this.startBlock("thinking", '{"type":"thinking","thinking":"","signature":""}');
        return head + this.blockDelta(`{"type":"thinking_delta","thinking":${JSON.stringify(e.value.text)}}`);
      }
      case "toolCallDelta": {
        const { index, id, name, arguments: args } = e.value;
        let head = "";
        let block = this.toolBlocks.get(index);
        if (block === undefined) {
          head = this.startBlock(
            "tool",
            `{"type":"tool_use","id":${JSON.stringify(id)},"name":${JSON.stringify(name)},"input":{}}`,
          );
          block = this.open;
          this.toolBlocks.set(index, block);
        } else if (block !== this.open) {
          throw new StreamShapeError("tool call fragments arrived interleaved; Anthropic's stream format cannot carry them");
        }
        if (args === "") return head;
        return head + this.blockDelta(`{"type":"input_json_delta","partial_json":${JSON.stringify(args)}}`);
      }
      case "done": {
        const usage = JSON.stringify(usageObject(e.value.usage));
        return (
          this.closeBlock() +
          frame(
            "message_delta",
            `{"type":"message_delta","delta":{"stop_reason":"${stopReasonName(e.value.finishReason)}","stop_sequence":null},"usage":${usage}}`,
          ) +
          frame("message_stop", '{"type":"message_stop"}')
        );
      }
      default:
        return "";
    }
  }

  private startBlock(kind: "text" | "thinking" | "tool", block: string): string {
    const close = this.closeBlock();
    this.open = this.next++;
    this.openKind = kind;
    return close + frame("content_block_start", `{"type":"content_block_start","index":${this.open},"content_block":${block}}`);
  }

  private blockDelta(delta: string): string {
    return frame("content_block_delta", `{"type":"content_block_delta","index":${this.open},"delta":${delta}}`);
  }

  private closeBlock(): string {
    if (this.open === none) return "";
    const index = this.open;
    this.open = none;
    this.openKind = undefined;
    return frame("content_block_stop", `{"type":"content_block_stop","index":${index}}`);
  }
}

function frame(event: string, data: string): string {
  return `event: ${event}\ndata: ${data}\n\n`;
}
