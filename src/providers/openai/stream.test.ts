import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason } from "../../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { UpstreamError } from "../../errors/gateway-error.js";
import { failures } from "../../errors/failure-table.js";
import type { SseEvent } from "../../transport/sse-parser.js";
import { translateChatStream } from "./stream.js";
import type { AnswerFailures } from "./response.js";

const answerFailures: AnswerFailures = {
  provider: "oai",
  malformed: (what) => new UpstreamError({ failure: failures.malformed, provider: "oai", message: `malformed: ${what}` }),
  streamCut: (what) => new UpstreamError({ failure: failures.streamCut, provider: "oai", message: `cut: ${what}` }),
};

const data = (payload: unknown): SseEvent => ({
  event: "message",
  data: typeof payload === "string" ? payload : JSON.stringify(payload),
  id: undefined,
});
const done = data("[DONE]");

function chunk(delta: Record<string, unknown>, extra: Record<string, unknown> = {}): SseEvent {
  return data({
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    model: "gpt-4o-2024-08-06",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: null }],
    ...extra,
  });
}
function finish(reason: string): SseEvent {
  return data({ id: "chatcmpl-1", model: "gpt-4o-2024-08-06", choices: [{ index: 0, delta: {}, finish_reason: reason }] });
}
function usage(prompt: number, completion: number, details: Record<string, unknown> = {}): SseEvent {
  return data({
    id: "chatcmpl-1",
    model: "gpt-4o-2024-08-06",
    choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, ...details },
  });
}

async function* source(events: readonly SseEvent[], onPullAfterEnd?: () => void): AsyncGenerator<SseEvent> {
  for (const event of events) yield event;
  onPullAfterEnd?.();
}

/** The events, in a compact form that makes whole sequences easy to compare. */
async function run(events: readonly SseEvent[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const event of translateChatStream(source(events), { failures: answerFailures, model: "deployment-model" })) {
    out.push(compact(event));
  }
  return out;
}

function compact(event: StreamCompleteResponse): unknown {
  const { case: kind, value } = event.event;
  switch (kind) {
    case "start":
      return ["start", value.id, value.model, value.provider];
    case "delta":
      return ["text", value.text];
    case "reasoningDelta":
      return ["reasoning", value.text];
    case "toolCallDelta":
      return ["tool", value.index, value.id, value.name, value.arguments];
    case "done": {
      const u = value.usage!;
      return ["done", FinishReason[value.finishReason], u.inputTokens, u.outputTokens, u.cachedInputTokens, u.reasoningTokens];
    }
    default:
      throw new Error(`event without a case: ${String(kind)}`);
  }
}

async function failure(events: readonly SseEvent[]): Promise<{ error: ConnectError; seen: unknown[] }> {
  const seen: unknown[] = [];
  try {
    for await (const event of translateChatStream(source(events), { failures: answerFailures, model: "m" })) {
      seen.push(compact(event));
    }
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return { error: err as ConnectError, seen };
  }
  throw new Error(`expected the stream to fail; it yielded ${JSON.stringify(seen)}`);
}

function reason(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema)[0]?.reason;
}

const start = ["start", "chatcmpl-1", "gpt-4o-2024-08-06", "oai"];

describe("translateChatStream", () => {
  it("emits start, the non-empty fragments, and done with the usage that follows finish_reason", async () => {
    expect(
      await run([
        chunk({ role: "assistant", content: "", refusal: null }),
        chunk({ content: "Hel" }),
        chunk({ content: "" }),
        chunk({ content: "lo" }),
        finish("stop"),
        usage(9, 2, { prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 1 } }),
        done,
      ]),
    ).toEqual([start, ["text", "Hel"], ["text", "lo"], ["done", "STOP", 9, 2, 4, 1]]);
  });

  it("still ends at [DONE] with zero usage when the server sends no usage chunk", async () => {
    expect(await run([chunk({ content: "x" }), finish("length"), done])).toEqual([
      start,
      ["text", "x"],
      ["done", "LENGTH", 0, 0, 0, 0],
    ]);
  });

  it("keeps the last usage when a server sends it on every chunk", async () => {
    expect(
      await run([
        chunk({ content: "a" }, { usage: { prompt_tokens: 5, completion_tokens: 1 } }),
        chunk({ content: "b" }, { usage: { prompt_tokens: 5, completion_tokens: 2 } }),
        finish("stop"),
        done,
      ]),
    ).toEqual([start, ["text", "a"], ["text", "b"], ["done", "STOP", 5, 2, 0, 0]]);
  });

  it("stops reading at [DONE]", async () => {
    let pulledAfterDone = false;
    const events = [chunk({ content: "a" }), finish("stop"), done, data("not json")];
    const out: unknown[] = [];
    const stream = translateChatStream(
      source(events, () => (pulledAfterDone = true)),
      { failures: answerFailures, model: "m" },
    );
    for await (const event of stream) out.push(compact(event));
    expect(out).toEqual([start, ["text", "a"], ["done", "STOP", 0, 0, 0, 0]]);
    expect(pulledAfterDone).toBe(false);
  });

  it("starts at the first chunk that names the model, skipping Azure's prompt-filter chunk", async () => {
    const azureFirst = data({
      choices: [],
      created: 0,
      id: "",
      model: "",
      object: "",
      prompt_filter_results: [{ prompt_index: 0 }],
    });
    expect(await run([azureFirst, chunk({ content: "hi" }), finish("stop"), done])).toEqual([
      start,
      ["text", "hi"],
      ["done", "STOP", 0, 0, 0, 0],
    ]);
  });

  it("falls back to the deployment's model and a generated id when the server names neither", async () => {
    const out = await run([data({ choices: [{ index: 0, delta: { content: "x" } }] }), done]);
    expect(out[0]).toEqual(["start", expect.stringMatching(/^chatcmpl-sluice-[0-9a-f-]{36}$/), "deployment-model", "oai"]);
    expect(out.slice(1)).toEqual([
      ["text", "x"],
      ["done", "OTHER", 0, 0, 0, 0],
    ]);
  });

  it("streams tool calls: id and name once on the first fragment, then argument fragments", async () => {
    expect(
      await run([
        chunk({ role: "assistant", content: null }),
        chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "f", arguments: "" } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x"' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }),
        chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "g", arguments: "{}" } }] }),
        // Some servers repeat id and name on every fragment: not passed on twice.
        chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "g", arguments: "" } }] }),
        finish("tool_calls"),
        done,
      ]),
    ).toEqual([
      start,
      ["tool", 0, "call_a", "f", ""],
      ["tool", 0, "", "", '{"x"'],
      ["tool", 0, "", "", ":1}"],
      ["tool", 1, "call_b", "g", "{}"],
      ["done", "TOOL_CALLS", 0, 0, 0, 0],
    ]);
  });

  it("numbers tool calls by id for servers that omit index", async () => {
    expect(
      await run([
        chunk({ tool_calls: [{ id: "a", function: { name: "f", arguments: "{" } }] }),
        chunk({ tool_calls: [{ function: { arguments: "}" } }] }),
        chunk({ tool_calls: [{ id: "b", function: { name: "g", arguments: "{}" } }] }),
        chunk({ tool_calls: [{ id: "b", function: { arguments: " " } }] }),
        finish("function_call"),
        done,
      ]),
    ).toEqual([
      start,
      ["tool", 0, "a", "f", "{"],
      ["tool", 0, "", "", "}"],
      ["tool", 1, "b", "g", "{}"],
      ["tool", 1, "", "", " "],
      ["done", "TOOL_CALLS", 0, 0, 0, 0],
    ]);
  });

  it("streams reasoning_content (or reasoning, not both) as reasoning deltas", async () => {
    expect(
      await run([
        chunk({ reasoning_content: "think", content: null }),
        chunk({ reasoning_content: " more", reasoning: " more" }),
        chunk({ reasoning: " again" }),
        chunk({ reasoning_content: "", content: "answer" }),
        finish("stop"),
        done,
      ]),
    ).toEqual([
      start,
      ["reasoning", "think"],
      ["reasoning", " more"],
      ["reasoning", " again"],
      ["text", "answer"],
      ["done", "STOP", 0, 0, 0, 0],
    ]);
  });

  it("streams a refusal as text and finishes with REFUSAL (LENGTH when it was cut short)", async () => {
    const refusal = [
      chunk({ role: "assistant", content: null, refusal: "" }),
      chunk({ refusal: "I can't" }),
      chunk({ refusal: " help." }),
    ];
    expect(await run([...refusal, finish("stop"), done])).toEqual([
      start,
      ["text", "I can't"],
      ["text", " help."],
      ["done", "REFUSAL", 0, 0, 0, 0],
    ]);
    expect((await run([...refusal, finish("length"), done])).at(-1)).toEqual(["done", "LENGTH", 0, 0, 0, 0]);
  });

  it("maps every finish_reason, unknown ones and a missing one to OTHER", async () => {
    const cases: Array<[string | undefined, string]> = [
      ["stop", "STOP"],
      ["length", "LENGTH"],
      ["tool_calls", "TOOL_CALLS"],
      ["function_call", "TOOL_CALLS"],
      ["content_filter", "CONTENT_FILTER"],
      ["eos_token", "OTHER"],
      [undefined, "OTHER"],
    ];
    for (const [wire, expected] of cases) {
      const events = wire === undefined ? [chunk({ content: "x" }), done] : [chunk({ content: "x" }), finish(wire), done];
      expect((await run(events)).at(-1), String(wire)).toEqual(["done", expected, 0, 0, 0, 0]);
    }
  });

  it("reads only choice index 0 (Sluice never asks for n > 1)", async () => {
    const multi = (index: number, content: string) =>
      data({ id: "chatcmpl-1", model: "gpt-4o-2024-08-06", choices: [{ index, delta: { content }, finish_reason: null }] });
    expect(
      await run([
        multi(0, "zero"),
        multi(1, "one"),
        data({
          id: "chatcmpl-1",
          model: "gpt-4o-2024-08-06",
          choices: [
            { index: 2, delta: { content: "two" }, finish_reason: "length" },
            { index: 0, delta: { content: "!" }, finish_reason: "stop" },
          ],
        }),
        done,
      ]),
    ).toEqual([start, ["text", "zero"], ["text", "!"], ["done", "STOP", 0, 0, 0, 0]]);
  });

  it("ignores unknown fields and unknown named events", async () => {
    expect(
      await run([
        chunk({ content: "a", audio: { id: "x" }, annotations: [] }, { obfuscation: "abc", service_tier: "default" }),
        { event: "keepalive", data: "ping", id: undefined },
        finish("stop"),
        done,
      ]),
    ).toEqual([start, ["text", "a"], ["done", "STOP", 0, 0, 0, 0]]);
  });

  it("throws streamCut, never done, when the stream ends without [DONE] — even after finish_reason and usage", async () => {
    const { error, seen } = await failure([chunk({ content: "a" }), finish("stop"), usage(1, 1)]);
    expect(error.code).toBe(Code.Unavailable);
    expect(reason(error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect(seen).toEqual([start, ["text", "a"]]);
    const empty = await failure([]);
    expect(reason(empty.error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect(empty.seen).toEqual([]);
  });

  it("throws UPSTREAM_MALFORMED for [DONE] without any chunk and for data that is not a JSON object", async () => {
    for (const events of [[done], [data("{not json")], [data("42")], [chunk({ content: "a" }), data("null")]]) {
      const { error } = await failure(events);
      expect(error.code).toBe(Code.Internal);
      expect(reason(error)).toBe("UPSTREAM_MALFORMED");
    }
  });

  it("throws an in-stream error object, classified by the failure table", async () => {
    const serverError = {
      error: { message: "The server had an error while processing your request.", type: "server_error", param: null, code: null },
    };
    const mid = await failure([chunk({ content: "a" }), data(serverError)]);
    expect(mid.seen).toEqual([start, ["text", "a"]]);
    expect(mid.error.code).toBe(Code.Unavailable);
    expect(reason(mid.error)).toBe("UPSTREAM_UNAVAILABLE");
    expect(mid.error.rawMessage).toContain("The server had an error");

    const rate = await failure([
      {
        event: "error",
        data: JSON.stringify({ error: { message: "slow down", type: "tokens", code: "rate_limit_exceeded" } }),
        id: undefined,
      },
    ]);
    expect(rate.seen).toEqual([]);
    expect(rate.error.code).toBe(Code.ResourceExhausted);
    expect((rate.error as UpstreamError).failure.retryable).toBe(true);

    const plain = await failure([{ event: "error", data: "upstream exploded", id: undefined }]);
    expect(plain.error.code).toBe(Code.Unavailable);
    expect(plain.error.rawMessage).toContain("upstream exploded");
  });
});
