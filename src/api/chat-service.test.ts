import { describe, expect, it, afterEach } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createInProcessSluice, type InProcessSluice } from "../../test/helpers/in-process.js";
import type { DemoProvider } from "../providers/demo/demo-provider.js";

const fastDemo = {
  providers: { demo: { type: "demo", wordDelayMs: 0 } },
  models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
};

function userText(text: string) {
  return { role: Role.USER, content: [{ part: { case: "text" as const, value: text } }] };
}

let current: InProcessSluice | undefined;
function start(doc: Record<string, unknown> = fastDemo): InProcessSluice {
  current = createInProcessSluice(doc);
  return current;
}
afterEach(async () => {
  await current?.sluice.close();
  current = undefined;
});

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("ChatService (in process)", () => {
  it("completes a chat through the demo provider with usage and provider name", async () => {
    const { chat } = start();
    const res = await chat.complete({ model: "demo", messages: [userText("Hello there")] });
    expect(res.provider).toBe("demo");
    expect(res.model).toBe("sluice-demo-1");
    expect(res.message?.role).toBe(Role.ASSISTANT);
    const text = res.message?.content.map((p) => (p.part.case === "text" ? p.part.value : "")).join("");
    expect(text).toContain('You said: "Hello there"');
    expect(res.finishReason).toBe(FinishReason.STOP);
    expect(res.usage?.inputTokens).toBeGreaterThan(0);
    expect(res.usage?.outputTokens).toBe(text?.trim().split(/\s+/).length);
  });

  it("streams start, deltas and exactly one final done whose text matches the unary answer", async () => {
    const { chat } = start();
    const request = { model: "demo", messages: [userText("stream me")] };
    const unary = await chat.complete(request);
    const kinds: string[] = [];
    let text = "";
    for await (const event of chat.streamComplete(request)) {
      kinds.push(event.event.case ?? "none");
      if (event.event.case === "delta") text += event.event.value.text;
      if (event.event.case === "start") expect(event.event.value.provider).toBe("demo");
      if (event.event.case === "done") {
        expect(event.event.value.finishReason).toBe(FinishReason.STOP);
        expect(event.event.value.usage).toEqual(unary.usage);
      }
    }
    expect(kinds[0]).toBe("start");
    expect(kinds.at(-1)).toBe("done");
    expect(kinds.filter((k) => k === "done")).toHaveLength(1);
    expect(kinds.filter((k) => k === "delta").length).toBeGreaterThan(5);
    const unaryText = unary.message?.content[0]?.part.value;
    expect(text).toBe(unaryText);
  });

  it("honours max_output_tokens and stop sequences with the right finish reason", async () => {
    const { chat } = start();
    const short = await chat.complete({ model: "demo", messages: [userText("hi")], maxOutputTokens: 3 });
    expect(short.finishReason).toBe(FinishReason.LENGTH);
    expect(short.usage?.outputTokens).toBe(3);
    const stopped = await chat.complete({ model: "demo", messages: [userText("hi")], stop: ["demo"] });
    const text = stopped.message?.content[0]?.part.value as string;
    expect(text).not.toContain("demo");
    expect(stopped.finishReason).toBe(FinishReason.STOP);
  });

  it("answers an unknown model with NOT_FOUND naming it, and ErrorInfo MODEL_NOT_FOUND", async () => {
    const { chat } = start();
    const err = await rejection(chat.complete({ model: "gpt-nope", messages: [userText("x")] }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain('"gpt-nope"');
    const [info] = err.findDetails(ErrorInfoSchema);
    expect(info).toMatchObject({ reason: "MODEL_NOT_FOUND", domain: "sluice", metadata: { model: "gpt-nope" } });
  });

  it("rejects an invalid request with INVALID_ARGUMENT and a BadRequest naming every bad field", async () => {
    const { chat } = start();
    const err = await rejection(
      chat.complete({
        model: "",
        messages: [
          { role: Role.UNSPECIFIED, content: [] },
          { role: Role.TOOL, content: [{ part: { case: "text", value: "r" } }] },
        ],
        temperature: 3,
        stop: ["a", ""],
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    const [badRequest] = err.findDetails(BadRequestSchema);
    const fields = badRequest?.fieldViolations.map((v) => v.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "model",
        "messages[0].role",
        "messages[0].content",
        "messages[1].tool_call_id",
        "temperature",
        "stop[1]",
      ]),
    );
    // The message names fields, never request text.
    expect(err.rawMessage).not.toContain('r"');
  });

  it("rejects settings the demo provider lacks, naming field and provider", async () => {
    const { chat } = start();
    const err = await rejection(
      chat.complete({
        model: "demo",
        messages: [userText("x")],
        tools: [{ name: "get_weather", description: "d" }],
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    const [badRequest] = err.findDetails(BadRequestSchema);
    expect(badRequest?.fieldViolations[0]).toMatchObject({ field: "tools", reason: "UNSUPPORTED_BY_PROVIDER" });
    expect(err.rawMessage).toContain("provider demo");
  });

  it("aborts the provider when the caller cancels a stream", async () => {
    const { chat, sluice } = start({
      providers: { demo: { type: "demo", wordDelayMs: 10_000 } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
    });
    const demo = sluice.providers.get("demo") as DemoProvider;
    const aborted = new Promise((resolve) => demo.events.once("aborted", resolve));
    const controller = new AbortController();
    const events: string[] = [];
    const consume = (async () => {
      for await (const event of chat.streamComplete(
        { model: "demo", messages: [userText("x")] },
        { signal: controller.signal },
      )) {
        events.push(event.event.case ?? "");
        if (events.length === 2) controller.abort();
      }
    })();
    const err = await rejection(consume);
    expect(err.code).toBe(Code.Canceled);
    await aborted;
    expect(events).toEqual(["start", "delta"]);
  });

  it("ends a unary call with DEADLINE_EXCEEDED when the caller's deadline passes, aborting the provider", async () => {
    const { chat, sluice } = start({
      providers: { demo: { type: "demo", responseDelayMs: 10_000 } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
    });
    const demo = sluice.providers.get("demo") as DemoProvider;
    const aborted = new Promise((resolve) => demo.events.once("aborted", resolve));
    const err = await rejection(chat.complete({ model: "demo", messages: [userText("x")] }, { timeoutMs: 50 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    await aborted;
  });
});

describe("ModelService (in process)", () => {
  it("lists configured aliases with provider, upstream model, context window and capabilities", async () => {
    const { models } = start({
      providers: { demo: { type: "demo" }, other: { type: "demo" } },
      models: {
        demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }], contextWindow: 32768 },
        pair: {
          deployments: [
            { provider: "other", model: "a" },
            { provider: "demo", model: "b" },
          ],
          capabilities: { vision: true },
        },
      },
    });
    const res = await models.listModels({});
    expect(res.models.map((m) => m.alias)).toEqual(["demo", "pair"]);
    expect(res.models[0]).toMatchObject({ provider: "demo", upstreamModel: "sluice-demo-1", contextWindow: 32768 });
    expect(res.models[1]?.deployments.map((d) => [d.provider, d.upstreamModel, d.providerType])).toEqual([
      ["other", "a", "demo"],
      ["demo", "b", "demo"],
    ]);
    expect(res.models[1]?.capabilities).toMatchObject({ vision: true, streaming: true, tools: true });
  });
});
