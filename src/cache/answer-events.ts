import { create } from "@bufbuild/protobuf";
import { MessageSchema, Role, type ToolCall, UsageSchema } from "../../gen/sluice/v1/chat_pb.js";
import {
  type CompleteResponse,
  CompleteResponseSchema,
  type RouteInfo,
  type StreamCompleteResponse,
  StreamCompleteResponseSchema,
} from "../../gen/sluice/v1/chat_service_pb.js";

/** Text of a replayed delta at most this long: a replay is a stream of events like the original, not one blob. */
const replayChunk = 64;

/**
 * A whole answer replayed as a stream: `start` (id, model, provider), the reasoning, text and
 * tool calls in fragments, then `done` (finish reason, usage, `route`).
 */
export function* replayEvents(response: CompleteResponse, route: RouteInfo): Generator<StreamCompleteResponse> {
  yield create(StreamCompleteResponseSchema, {
    event: { case: "start", value: { id: response.id, model: response.model, provider: response.provider } },
  });
  const message = response.message;
  if (message !== undefined) {
    for (let i = 0; i < message.reasoning.length; i += replayChunk) {
      yield create(StreamCompleteResponseSchema, {
        event: { case: "reasoningDelta", value: { text: message.reasoning.slice(i, i + replayChunk) } },
      });
    }
    for (const part of message.content) {
      if (part.part.case !== "text") continue;
      const text = part.part.value;
      for (let i = 0; i < text.length; i += replayChunk) {
        yield create(StreamCompleteResponseSchema, { event: { case: "delta", value: { text: text.slice(i, i + replayChunk) } } });
      }
    }
    for (let index = 0; index < message.toolCalls.length; index++) {
      const call = message.toolCalls[index]!;
      yield create(StreamCompleteResponseSchema, {
        event: { case: "toolCallDelta", value: { index, id: call.id, name: call.name, arguments: call.arguments } },
      });
    }
  }
  yield create(StreamCompleteResponseSchema, {
    event: { case: "done", value: { finishReason: response.finishReason, usage: response.usage, route } },
  });
}

/** Builds the whole answer from a stream's events, to store it. */
export class AnswerAccumulator {
  private id = "";
  private model = "";
  private provider = "";
  private text = "";
  private reasoning = "";
  private readonly calls: ToolCall[] = [];
  /** Characters so far (the entry's size, roughly). */
  size = 0;

  add(event: StreamCompleteResponse): CompleteResponse | undefined {
    const e = event.event;
    switch (e.case) {
      case "start":
        this.id = e.value.id;
        this.model = e.value.model;
        this.provider = e.value.provider;
        return undefined;
      case "delta":
        this.text += e.value.text;
        this.size += e.value.text.length;
        return undefined;
      case "reasoningDelta":
        this.reasoning += e.value.text;
        this.size += e.value.text.length;
        return undefined;
      case "toolCallDelta": {
        const v = e.value;
        let call = this.calls[v.index];
        if (call === undefined) {
          call = { $typeName: "sluice.v1.ToolCall", id: "", name: "", arguments: "" };
          this.calls[v.index] = call;
        }
        if (v.id !== "") call.id = v.id;
        if (v.name !== "") call.name = v.name;
        call.arguments += v.arguments;
        this.size += v.arguments.length + v.name.length;
        return undefined;
      }
      case "done":
        return create(CompleteResponseSchema, {
          id: this.id,
          model: this.model,
          provider: this.provider,
          message: create(MessageSchema, {
            role: Role.ASSISTANT,
            content: this.text === "" ? [] : [{ part: { case: "text", value: this.text } }],
            toolCalls: this.calls.filter((call) => call !== undefined),
            reasoning: this.reasoning,
          }),
          finishReason: e.value.finishReason,
          usage: e.value.usage ?? create(UsageSchema),
          route: e.value.route,
        });
      default:
        return undefined;
    }
  }
}

/** An answer's size for the cache's byte limit: its text, roughly. */
export function answerSize(response: CompleteResponse): number {
  let size = 256 + response.id.length + response.model.length;
  const message = response.message;
  if (message === undefined) return size;
  size += message.reasoning.length;
  for (const part of message.content) if (part.part.case === "text") size += part.part.value.length;
  for (const call of message.toolCalls) size += call.name.length + call.arguments.length + call.id.length;
  return size;
}
