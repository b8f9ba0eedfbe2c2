import type { StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { doneEvent, reasoningEvent, startEvent, textEvent, toolCallEvent } from "../stream-events.js";
import type { SseEvent } from "../../transport/sse-parser.js";
import { inBandError, isErrorPayload } from "./errors.js";
import { completionId, mapFinishReason, mapUsage, reasoningText, type AnswerFailures } from "./response.js";

export interface StreamContext {
  readonly failures: AnswerFailures;
  /** The deployment's model id, reported when a server names none. */
  readonly model: string;
}

interface WireChunk {
  readonly id?: unknown;
  readonly model?: unknown;
  readonly choices?: unknown;
  readonly usage?: unknown;
}

interface WireChoice {
  readonly index?: unknown;
  readonly delta?: WireDelta | null;
  readonly finish_reason?: unknown;
}

interface WireDelta {
  readonly content?: unknown;
  readonly refusal?: unknown;
  readonly reasoning_content?: unknown;
  readonly reasoning?: unknown;
  readonly tool_calls?: unknown;
}

interface WireToolCallDelta {
  readonly index?: unknown;
  readonly id?: unknown;
  readonly function?: { readonly name?: unknown; readonly arguments?: unknown } | null;
}

/** What a tool call's fragments have already told the caller. */
interface ToolCallState {
  id: string;
  name: string;
}

const noChoices: readonly unknown[] = [];

/** The index of the call with this id, or the next free index. */
function indexOfId(calls: ReadonlyMap<number, ToolCallState>, id: string): number {
  if (id !== "") for (const [index, state] of calls) if (state.id === id) return index;
  return calls.size;
}

function parseLoose(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return { error: { message: data } };
  }
}

/**
 * Translates OpenAI `chat.completion.chunk` events into the contract's stream: one `start`
 * (id and model from the first chunk that has them), `delta` / `reasoning_delta` /
 * `tool_call_delta` fragments as they arrive, then one `done` — emitted only at `[DONE]`.
 *
 * Why only at `[DONE]`: with `include_usage`, OpenAI sends the finish_reason chunk, then a
 * usage chunk with `choices: []`, then `[DONE]`. Finishing at finish_reason would lose the
 * usage; finishing at the usage chunk would need a guess for servers that never send usage.
 * OpenAI and the compatible servers always end with `[DONE]`, so a stream that ends without
 * it was cut — even after finish_reason and usage — and throws streamCut rather than
 * claiming a clean end (openai-provider.test.ts "cut after finish_reason").
 *
 * Only choice index 0 is read (Sluice never asks for n > 1; a server that sends more is
 * ignored, not interleaved). Empty fragments produce no events. Unknown fields are ignored.
 * An `event: error` or a chunk with a top-level `error` key throws, classified by the
 * failure table (errors.ts).
 */
export async function* translateChatStream(
  events: AsyncIterable<SseEvent>,
  ctx: StreamContext,
): AsyncGenerator<StreamCompleteResponse> {
  const { failures } = ctx;
  let started = false;
  let sawChunk = false;
  let firstId: string | undefined;
  let finishReason: string | undefined;
  let refused = false;
  let usage: unknown;
  let toolCalls: Map<number, ToolCallState> | undefined;
  let lastToolIndex = -1;

  for await (const event of events) {
    if (event.event !== "message") {
      if (event.event === "error") throw inBandError(failures.provider, parseLoose(event.data));
      // Other named events are not part of OpenAI's chat stream (keep-alives of some servers).
      continue;
    }
    const data = event.data;
    if (data === "[DONE]") {
      if (!sawChunk) throw failures.malformed("the stream ended at [DONE] without a completion chunk");
      if (!started) yield startEvent(completionId(firstId), ctx.model, failures.provider);
      yield doneEvent(mapFinishReason(finishReason, refused), mapUsage(usage));
      return;
    }

    let chunk: WireChunk;
    try {
      chunk = JSON.parse(data) as WireChunk;
    } catch {
      throw failures.malformed("an event's data is not JSON");
    }
    if (chunk === null || typeof chunk !== "object") throw failures.malformed("an event's data is not a JSON object");
    if (isErrorPayload(chunk)) throw inBandError(failures.provider, chunk);
    sawChunk = true;

    const choices = Array.isArray(chunk.choices) ? (chunk.choices as unknown[]) : noChoices;
    if (!started) {
      const id = typeof chunk.id === "string" && chunk.id !== "" ? chunk.id : undefined;
      firstId ??= id;
      const model = typeof chunk.model === "string" ? chunk.model : "";
      // Azure opens with a prompt-filter chunk that has no id, no model and no choices;
      // the stream starts at the first chunk that says who answers or carries an answer.
      if (model !== "" || choices.length > 0) {
        started = true;
        yield startEvent(completionId(firstId), model !== "" ? model : ctx.model, failures.provider);
      }
    }
    // The usage chunk comes last; servers that send usage on every chunk are cumulative.
    if (chunk.usage !== undefined && chunk.usage !== null) usage = chunk.usage;

    for (let i = 0; i < choices.length; i++) {
      const choice = choices[i] as WireChoice | null;
      if (choice === null || typeof choice !== "object") continue;
      if (choice.index !== undefined && choice.index !== 0) continue;
      const delta = choice.delta;
      if (delta !== undefined && delta !== null && typeof delta === "object") {
        const reasoning = reasoningText(delta);
        if (reasoning !== "") yield reasoningEvent(reasoning);
        const content = delta.content;
        if (typeof content === "string" && content !== "") yield textEvent(content);
        // A refusal streams as text too (see mapFinishReason for why), and marks the finish.
        const refusal = delta.refusal;
        if (typeof refusal === "string" && refusal !== "") {
          refused = true;
          yield textEvent(refusal);
        }
        if (Array.isArray(delta.tool_calls)) {
          for (const fragment of delta.tool_calls as Array<WireToolCallDelta | null>) {
            if (fragment === null || typeof fragment !== "object") continue;
            toolCalls ??= new Map();
            const id = typeof fragment.id === "string" ? fragment.id : "";
            let index: number;
            if (typeof fragment.index === "number" && Number.isInteger(fragment.index) && fragment.index >= 0) {
              index = fragment.index;
            } else {
              // Servers that omit `index`: a new id opens the next call, anything else continues the last.
              index = id !== "" || lastToolIndex < 0 ? indexOfId(toolCalls, id) : lastToolIndex;
            }
            lastToolIndex = index;
            let state = toolCalls.get(index);
            if (state === undefined) {
              state = { id: "", name: "" };
              toolCalls.set(index, state);
            }
            const fn = fragment.function;
            const name = fn !== null && typeof fn === "object" && typeof fn.name === "string" ? fn.name : "";
            const args = fn !== null && typeof fn === "object" && typeof fn.arguments === "string" ? fn.arguments : "";
            // id and name go out once, on the call's first fragment, even when a server
            // repeats them on every fragment (the contract: later fragments carry arguments only).
            const newId = id !== "" && state.id === "" ? id : "";
            const newName = name !== "" && state.name === "" ? name : "";
            if (newId !== "") state.id = newId;
            if (newName !== "") state.name = newName;
            if (newId !== "" || newName !== "" || args !== "") yield toolCallEvent(index, newId, newName, args);
          }
        }
      }
      if (typeof choice.finish_reason === "string" && choice.finish_reason !== "") finishReason = choice.finish_reason;
    }
  }
  throw failures.streamCut(sawChunk ? "no [DONE] after the last chunk" : "no completion chunk");
}
