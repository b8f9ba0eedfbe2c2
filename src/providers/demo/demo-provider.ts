import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import {
  CompleteResponseSchema,
  StreamCompleteResponseSchema,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../../gen/sluice/v1/chat_service_pb.js";
import { MessageSchema, Role, UsageSchema } from "../../../gen/sluice/v1/chat_pb.js";
import type { DemoProviderConfig } from "../../config/schema.js";
import { invalidArgument, type FieldViolation } from "../../errors/gateway-error.js";
import { abortError } from "../../errors/abort-error.js";
import type { Provider, UpstreamCall } from "../provider.js";
import { composeDemoAnswer } from "./demo-answer.js";
import { reasons } from "../../errors/reasons.js";

/** Events a demo provider emits, so tests can see what reached "upstream". */
export interface DemoProviderEvents {
  /** A call started (unary or stream). */
  started: [kind: "complete" | "stream"];
  /** A call ended because its signal aborted (caller cancel, deadline, shutdown). */
  aborted: [kind: "complete" | "stream", reason: unknown];
  /** A call produced its whole answer. */
  finished: [kind: "complete" | "stream"];
}

export interface DemoProvider extends Provider {
  readonly type: "demo";
  readonly events: EventEmitter<DemoProviderEvents>;
}

/**
 * The built-in demo provider: deterministic answers, no network, clearly labelled in its
 * text. It implements the same Provider contract as the real adapters — streaming with
 * delays, honouring the AbortSignal — so the whole gateway path is real with no keys.
 */
export function createDemoProvider(name: string, config: DemoProviderConfig): DemoProvider {
  const events = new EventEmitter<DemoProviderEvents>();

  function reject(request: CompleteRequest): void {
    const violations: FieldViolation[] = [];
    const unsupported = (field: string): void => {
      violations.push({ field, description: `not supported by provider ${name} (demo)`, reason: reasons.unsupportedByProvider });
    };
    if (request.tools.length > 0) unsupported("tools");
    if (request.toolChoice !== undefined) unsupported("tool_choice");
    if (request.responseFormat?.format.case === "jsonSchema") unsupported("response_format.json_schema");
    if (violations.length > 0) throw invalidArgument(violations);
  }

  async function wait(ms: number, signal: AbortSignal): Promise<void> {
    if (ms > 0) await sleep(ms, undefined, { signal });
    else if (signal.aborted) throw signal.reason;
  }

  return {
    name,
    type: "demo",
    events,

    async complete(request: CompleteRequest, call: UpstreamCall): Promise<CompleteResponse> {
      reject(request);
      events.emit("started", "complete");
      try {
        await wait(config.responseDelayMs, call.signal);
      } catch (err) {
        events.emit("aborted", "complete", call.signal.reason ?? err);
        throw abortError(call.signal);
      }
      const answer = composeDemoAnswer(request);
      events.emit("finished", "complete");
      return create(CompleteResponseSchema, {
        id: `demo-${randomUUID()}`,
        model: call.model,
        provider: name,
        message: create(MessageSchema, {
          role: Role.ASSISTANT,
          content: [{ part: { case: "text", value: answer.pieces.join("") } }],
        }),
        finishReason: answer.finishReason,
        usage: create(UsageSchema, { inputTokens: answer.inputTokens, outputTokens: answer.outputTokens }),
      });
    },

    async *stream(request: CompleteRequest, call: UpstreamCall): AsyncGenerator<StreamCompleteResponse> {
      reject(request);
      const answer = composeDemoAnswer(request);
      events.emit("started", "stream");
      let finished = false;
      try {
        await wait(config.responseDelayMs, call.signal);
        yield create(StreamCompleteResponseSchema, {
          event: { case: "start", value: { id: `demo-${randomUUID()}`, model: call.model, provider: name } },
        });
        for (let i = 0; i < answer.pieces.length; i++) {
          if (i > 0) await wait(config.wordDelayMs, call.signal);
          yield create(StreamCompleteResponseSchema, {
            event: { case: "delta", value: { text: answer.pieces[i]! } },
          });
        }
        finished = true;
        events.emit("finished", "stream");
        yield create(StreamCompleteResponseSchema, {
          event: {
            case: "done",
            value: {
              finishReason: answer.finishReason,
              usage: { inputTokens: answer.inputTokens, outputTokens: answer.outputTokens },
            },
          },
        });
      } catch (err) {
        if (call.signal.aborted) {
          events.emit("aborted", "stream", call.signal.reason);
          throw abortError(call.signal);
        }
        throw err;
      } finally {
        // The consumer stopped early (caller gone) without an abort: still "aborted" for observers.
        if (!finished && !call.signal.aborted) events.emit("aborted", "stream", undefined);
      }
    },

    async close() {
      events.removeAllListeners();
    },
  };
}
