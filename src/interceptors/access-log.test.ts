import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
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
  it("logs one line per call with procedure, code and duration — never the prompt", async () => {
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
    expect(rpcLines.map((l) => [l["procedure"], l["code"]])).toEqual([
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
    const res = await accessLogInterceptor(logger)(next as never)({ stream: true, service: ChatService, method } as never);
    for await (const _ of (res as { message: AsyncIterable<unknown> }).message) break;
    expect(stopped).toBe(true);
    expect(lines.filter((l) => l["msg"] === "rpc").map((l) => l["code"])).toEqual(["canceled"]);
  });
});
