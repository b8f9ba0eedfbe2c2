import type { StreamCompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { finishReasonName, nowSeconds, usageJson } from "./response.js";

/** The comment line an SSE reader skips: sent while the model is silent, so proxies keep the connection. */
export const sseHeartbeat = ": keep-alive\n\n";

/** The line that ends an OpenAI stream that completed. */
export const sseDone = "data: [DONE]\n\n";

/**
 * The contract's stream events as OpenAI `chat.completion.chunk` server-sent events, one
 * call's worth. Each event becomes at most one SSE frame of text, built by concatenating the
 * chunk's fixed head (id, object, created, model: serialized once, at `start`) with the
 * event's own JSON — no object per chunk beyond the strings.
 *
 * - `start` → the first chunk, `delta: {"role":"assistant","content":""}` (as OpenAI opens).
 * - `delta` → `delta.content`; `reasoning_delta` → `delta.reasoning_content` (the field
 *   DeepSeek, vLLM and llama.cpp stream reasoning in; OpenAI's SDK passes it through).
 * - `tool_call_delta` → `delta.tool_calls: [{index, id, type, function: {name, arguments}}]`,
 *   id/type/name on a call's first fragment only, as OpenAI streams them.
 * - `done` → a chunk with `delta: {}` and the finish reason; with `include_usage`, a chunk
 *   with `choices: []` and `usage` (every earlier chunk then says `"usage":null`, as OpenAI
 *   does); then `data: [DONE]`.
 */
export class ChatChunkEncoder {
  private head = "";
  private readonly usageTail: string;

  constructor(private readonly includeUsage: boolean) {
    this.usageTail = includeUsage ? ',"usage":null}\n\n' : "}\n\n";
  }

  /** The SSE text for one event ("" for an event with nothing to say). */
  encode(event: StreamCompleteResponse): string {
    const e = event.event;
    switch (e.case) {
      case "start":
        this.head = `data: {"id":${JSON.stringify(e.value.id)},"object":"chat.completion.chunk","created":${nowSeconds()},"model":${JSON.stringify(e.value.model)},`;
        return this.choice('{"role":"assistant","content":""}', "null");
      case "delta":
        return e.value.text === "" ? "" : this.choice(`{"content":${JSON.stringify(e.value.text)}}`, "null");
      case "reasoningDelta":
        return e.value.text === "" ? "" : this.choice(`{"reasoning_content":${JSON.stringify(e.value.text)}}`, "null");
      case "toolCallDelta": {
        const { index, id, name, arguments: args } = e.value;
        const first = id !== "" || name !== "";
        const call = first
          ? `{"index":${index},"id":${JSON.stringify(id)},"type":"function","function":{"name":${JSON.stringify(name)},"arguments":${JSON.stringify(args)}}}`
          : `{"index":${index},"function":{"arguments":${JSON.stringify(args)}}}`;
        return this.choice(`{"tool_calls":[${call}]}`, "null");
      }
      case "done": {
        let out = this.choice("{}", `"${finishReasonName(e.value.finishReason)}"`);
        if (this.includeUsage) out += `${this.head}"choices":[],"usage":${JSON.stringify(usageJson(e.value.usage))}}\n\n`;
        return out + sseDone;
      }
      default:
        return "";
    }
  }

  private choice(delta: string, finishReason: string): string {
    return `${this.head}"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finishReason}}]${this.usageTail}`;
  }
}
