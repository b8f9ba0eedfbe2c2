import { afterEach, describe, expect, it, vi } from "vitest";
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createContextValues, createRouterTransport } from "@connectrpc/connect";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { createLogger } from "../telemetry/logger.js";
import { accessLogInterceptor } from "./access-log.js";

function capture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger({ level, destination }) };
}

const secretPrompt = "my password is hunter2";
const request = {
  model: "m",
  messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: secretPrompt } }] }],
};

function clientWith(impl: Parameters<typeof createRouterTransport>[0], logger: ReturnType<typeof createLogger>) {
  const transport = createRouterTransport(impl, { router: { interceptors: [accessLogInterceptor(logger)] } });
  return createClient(ChatService, transport);
}

describe("access log and error boundary", () => {
  it("logs one line per call with rpc, code and duration — never the prompt", async () => {
    const { lines, logger } = capture();
    const client = clientWith((router) => {
      router.service(ChatService, {
        complete: () => {
          throw new ConnectError("nope", Code.NotFound);
        },
        async *streamComplete() {
          yield { event: { case: "done", value: {} } };
        },
      });
    }, logger);
    await expect(client.complete(request)).rejects.toMatchObject({ code: Code.NotFound });
    for await (const _ of client.streamComplete(request)) void _;
    const rpcLines = lines.filter((l) => l["msg"] === "rpc");
    expect(rpcLines.map((l) => [l["rpc"], l["code"]])).toEqual([
      ["sluice.v1.ChatService/Complete", "not_found"],
      ["sluice.v1.ChatService/StreamComplete", "ok"],
    ]);
    expect(typeof rpcLines[0]!["durationMs"]).toBe("number");
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });

  it("turns a non-Connect error into INTERNAL 'internal error', logging it for operators only", async () => {
    const { lines, logger } = capture("warn");
    const client = clientWith((router) => {
      router.service(ChatService, {
        complete: () => {
          throw new TypeError(`cannot read ${secretPrompt}`);
        },
      });
    }, logger);
    const err = await client.complete(request).then(
      () => new ConnectError("expected a failure", Code.Unknown),
      (e: unknown) => ConnectError.from(e),
    );
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error");
    // Logged even at warn: a bug must never pass silently.
    expect(lines.some((l) => l["msg"] === "unexpected error in handler")).toBe(true);
    expect(lines.some((l) => l["msg"] === "rpc" && l["code"] === "internal")).toBe(true);
    expect(lines.find((l) => l["msg"] === "unexpected error in handler")).toMatchObject({ errType: "TypeError" });
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });
});

describe("access log on streams", () => {
  it("reports a stream that fails mid-way with a non-Connect error as INTERNAL, after the events it sent", async () => {
    const { lines, logger } = capture();
    const client = clientWith((router) => {
      router.service(ChatService, {
        async *streamComplete() {
          yield { event: { case: "start", value: {} } };
          throw new TypeError(`broke on ${secretPrompt}`);
        },
      });
    }, logger);
    const seen: (string | undefined)[] = [];
    const err = await (async () => {
      for await (const event of client.streamComplete(request)) seen.push(event.event.case);
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(seen).toEqual(["start"]);
    expect(err?.code).toBe(Code.Internal);
    expect(err?.rawMessage).toBe("internal error");
    expect(lines.filter((l) => l["msg"] === "rpc").map((l) => l["code"])).toEqual(["internal"]);
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });

  it("logs a stream the caller leaves early as canceled, and stops the implementation", async () => {
    const { lines, logger } = capture();
    let stopped = false;
    async function* events() {
      try {
        for (let i = 0; i < 100; i++) yield { event: { case: "delta", value: { text: "x" } } };
      } finally {
        stopped = true;
      }
    }
    // The interceptor as a server calls it: the stream's consumer is the server's writer.
    const method = ChatService.method.streamComplete;
    const next = async () => ({
      stream: true,
      service: ChatService,
      method,
      header: new Headers(),
      trailer: new Headers(),
      message: events(),
    });
    const res = await accessLogInterceptor(logger)(next as never)({
      stream: true,
      service: ChatService,
      method,
      header: new Headers(),
      contextValues: createContextValues(),
      signal: new AbortController().signal,
    } as never);
    for await (const _ of (res as { message: AsyncIterable<unknown> }).message) break;
    expect(stopped).toBe(true);
    expect(lines.filter((l) => l["msg"] === "rpc").map((l) => l["code"])).toEqual(["canceled"]);
  });
});

/** Lines as objects, written synchronously (no stream buffering: the tests below run on fake timers). */
function syncCapture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const destination = { write: (line: string) => void lines.push(JSON.parse(line)) };
  return { lines, logger: createLogger({ level, destination }) };
}

const completeMethod = ChatService.method.complete;
const streamMethod = ChatService.method.streamComplete;

/** Runs one unary call through the interceptor as a server does, its implementation failing with `fail(signal)`. */
async function unaryCall(
  interceptor: ReturnType<typeof accessLogInterceptor>,
  fail: (controller: AbortController) => unknown,
): Promise<void> {
  const controller = new AbortController();
  const next = async () => {
    throw fail(controller);
  };
  const req = {
    stream: false,
    service: ChatService,
    method: completeMethod,
    signal: controller.signal,
    header: new Headers(),
    contextValues: createContextValues(),
  };
  await interceptor(next as never)(req as never).catch(() => {});
}

/** A stream call whose consumer reads `read` messages, then stops (the caller went away). */
async function streamLeftAfter(interceptor: ReturnType<typeof accessLogInterceptor>, read: number): Promise<void> {
  async function* events() {
    for (let i = 0; i < 10; i++) yield { event: { case: "delta", value: { text: "x" } } };
  }
  const next = async () => ({
    stream: true,
    service: ChatService,
    method: streamMethod,
    header: new Headers(),
    trailer: new Headers(),
    message: events(),
  });
  const req = {
    stream: true,
    service: ChatService,
    method: streamMethod,
    signal: new AbortController().signal,
    header: new Headers(),
    contextValues: createContextValues(),
  };
  const res = (await interceptor(next as never)(req as never)) as { message: AsyncIterable<unknown> };
  const iterator = res.message[Symbol.asyncIterator]();
  for (let i = 0; i < read; i++) await iterator.next();
  await iterator.return?.();
}

/** The caller reset its stream: the call's signal aborts with the reset's error, which the implementation rethrows. */
const resetBy = (code: Code) => (controller: AbortController) => {
  controller.abort(new ConnectError("http/2 stream closed", code));
  return controller.signal.reason;
};

const rpcCodes = (lines: Record<string, unknown>[]) => lines.filter((l) => l["msg"] === "rpc").map((l) => l["code"]);
const summaries = (lines: Record<string, unknown>[]) => lines.filter((l) => l["msg"] === "rpcs cancelled by their callers");

describe("access log under a reset storm (calls cancelled by their callers)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("logs the first as usual, then one summary line per interval with the count, and stops when they stop", async () => {
    vi.useFakeTimers();
    const { lines, logger } = syncCapture();
    const interceptor = accessLogInterceptor(logger, { cancelledSummaryIntervalMs: 10_000 });
    for (let i = 0; i < 1_000; i++) await unaryCall(interceptor, resetBy(Code.Canceled));
    await streamLeftAfter(interceptor, 0);
    expect(rpcCodes(lines)).toEqual(["canceled"]);
    expect(summaries(lines)).toEqual([]);

    await vi.advanceTimersByTimeAsync(10_000);
    expect(summaries(lines)).toMatchObject([
      {
        level: 30,
        count: 1_000,
        intervalMs: 10_000,
        byKey: { "sluice.v1.ChatService/Complete": 999, "sluice.v1.ChatService/StreamComplete": 1 },
      },
    ]);

    // Still coming: the next interval gets its own summary, not a line each.
    for (let i = 0; i < 500; i++) await unaryCall(interceptor, resetBy(Code.Canceled));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(summaries(lines).map((l) => l["count"])).toEqual([1_000, 500]);
    expect(rpcCodes(lines)).toEqual(["canceled"]);

    // A quiet interval ends the summary: no line, no timer left behind.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(summaries(lines)).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
    // ... and the next cancelled call after the quiet spell has its own line again.
    await unaryCall(interceptor, resetBy(Code.Canceled));
    expect(rpcCodes(lines)).toEqual(["canceled", "canceled"]);
  });

  it("ordinary calls keep one line each while cancelled ones are summarised", async () => {
    vi.useFakeTimers();
    const { lines, logger } = syncCapture();
    const interceptor = accessLogInterceptor(logger);
    await unaryCall(interceptor, resetBy(Code.Canceled));
    for (let i = 0; i < 100; i++) await unaryCall(interceptor, resetBy(Code.Canceled));
    await unaryCall(interceptor, () => new ConnectError("bad", Code.InvalidArgument));
    // The caller's deadline is worth a line; so is the server's own drain (UNAVAILABLE).
    await unaryCall(interceptor, resetBy(Code.DeadlineExceeded));
    await unaryCall(interceptor, resetBy(Code.Unavailable));
    // A stream the caller left after it had answers is a caller's choice worth its line.
    await streamLeftAfter(interceptor, 3);
    expect(rpcCodes(lines)).toEqual(["canceled", "invalid_argument", "deadline_exceeded", "unavailable", "canceled"]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(summaries(lines).map((l) => l["count"])).toEqual([100]);
  });

  it("counts a reset with an error code (INTERNAL, RESOURCE_EXHAUSTED) as the caller leaving, not as a server error", async () => {
    vi.useFakeTimers();
    const { lines, logger } = syncCapture();
    const interceptor = accessLogInterceptor(logger);
    for (let i = 0; i < 50; i++) await unaryCall(interceptor, resetBy(Code.Internal));
    for (let i = 0; i < 50; i++) await unaryCall(interceptor, resetBy(Code.ResourceExhausted));
    // An INTERNAL the implementation raised itself (not the signal's reason) is still an error line each.
    await unaryCall(interceptor, () => new ConnectError("upstream broke", Code.Internal));
    await unaryCall(interceptor, () => new ConnectError("upstream broke", Code.Internal));
    expect(rpcCodes(lines)).toEqual(["internal", "internal", "internal"]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(summaries(lines).map((l) => l["count"])).toEqual([99]);
  });

  it("with info off, cancelled calls cost no line and no timer", async () => {
    vi.useFakeTimers();
    const { lines, logger } = syncCapture("warn");
    const interceptor = accessLogInterceptor(logger);
    for (let i = 0; i < 100; i++) await unaryCall(interceptor, resetBy(Code.Internal));
    await streamLeftAfter(interceptor, 0);
    expect(lines).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
