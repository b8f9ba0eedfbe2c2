import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { ChatService } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import {
  jsonResponse,
  sseResponse,
  startFakeUpstream,
  type FakeUpstream,
  type RecordedRequest,
} from "../helpers/fake-upstream.js";
import {
  allProtocolTransports,
  createGrpcJsClient,
  toConnectError,
  type ProtocolTransport,
} from "../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";

// Secrets planted everywhere a careless gateway would leak them: the provider key (also
// echoed back in an upstream error body, as OpenAI does), the caller's credentials, the
// prompt and the completion. None may reach a log line (at the most verbose level); no key
// or credential may reach an answer. (A provider's 400 message quoting the caller's own
// prompt goes back to that caller: it is theirs.)
const providerKey = "sk-proj-PLANTEDproviderKEY0123456789abcdefXYZ";
const callerToken = "caller-PLANTED-bearer-5e1f9c";
const callerApiKey = "caller-PLANTED-apikey-77aa31";
const promptSecret = "PLANTED-PROMPT-correct-horse-battery";
const completionSecret = "PLANTED-COMPLETION-staple";
const credentials = [providerKey, providerKey.slice(8, 30), callerToken, callerApiKey];
const planted = [...credentials, promptSecret, completionSecret];

const reportedModel = "gpt-4o-2024-08-06";

/** The fake OpenAI: what it answers depends on the directive in the prompt ("[stream]", "[401]"…). */
function respond(request: RecordedRequest) {
  const text = request.bodyText;
  if (text.includes("[401]")) {
    return jsonResponse(401, {
      error: {
        message: `Incorrect API key provided: ${providerKey}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        type: "invalid_request_error",
        param: null,
        code: "invalid_api_key",
      },
    });
  }
  if (text.includes("[400]")) {
    return jsonResponse(400, {
      error: {
        message: `Invalid request with key ${providerKey} for prompt ${promptSecret}`,
        type: "invalid_request_error",
        param: "messages",
        code: null,
      },
    });
  }
  if (text.includes("[500]")) {
    return jsonResponse(500, { error: { message: `upstream exploded near ${providerKey}`, type: "server_error" } });
  }
  if (text.includes('"stream":true')) {
    const chunk = (body: object) =>
      `data: ${JSON.stringify({ id: "chatcmpl-s1", object: "chat.completion.chunk", created: 1, model: reportedModel, ...body })}\n\n`;
    return sseResponse([
      chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }),
      chunk({ choices: [{ index: 0, delta: { content: completionSecret }, finish_reason: null }] }),
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }),
      chunk({ choices: [], usage: { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500 } }),
      "data: [DONE]\n\n",
    ]);
  }
  return jsonResponse(200, {
    id: "chatcmpl-u1",
    object: "chat.completion",
    created: 1,
    model: reportedModel,
    choices: [{ index: 0, message: { role: "assistant", content: completionSecret }, finish_reason: "stop" }],
    usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500 },
  });
}

const ask = (directive: string) => ({
  model: "gpt",
  messages: [
    { role: Role.SYSTEM, content: [{ part: { case: "text" as const, value: `You guard ${promptSecret}.` } }] },
    { role: Role.USER, content: [{ part: { case: "text" as const, value: `${directive} tell me ${promptSecret}` } }] },
  ],
});

const callerHeaders = { authorization: `Bearer ${callerToken}`, "x-api-key": callerApiKey };

describe("access log and secrets, over every protocol", () => {
  let upstream: FakeUpstream;
  let gateway: StartedSluice;
  let log: CapturedLogger;
  let transports: ProtocolTransport[];
  /** Everything callers received: errors (message, details, metadata) and answer headers. */
  const received: unknown[] = [];

  beforeAll(async () => {
    upstream = await startFakeUpstream(respond);
    log = createCapturedLogger("trace");
    gateway = await startSluice(
      {
        providers: { oai: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "${PLANTED_KEY}" } },
        models: {
          gpt: {
            deployments: [
              {
                provider: "oai",
                model: "gpt-4o",
                price: { inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25 },
              },
            ],
            retry: { maxAttempts: 1 },
          },
        },
        resilience: { breaker: { volumeThreshold: 1_000_000 } },
      },
      { env: { PLANTED_KEY: providerKey }, logger: log.logger },
    );
    transports = allProtocolTransports(gateway.url);
  });

  afterAll(async () => {
    for (const t of transports) t.close();
    await gateway.close();
    await upstream.close();
  });

  /** A unary call; its answer headers (or error) recorded. */
  async function unary(transport: Transport, directive: string, headers: Record<string, string> = {}) {
    const chat = createClient(ChatService, transport);
    let responseHeaders: Headers | undefined;
    try {
      const answer = await chat.complete(ask(directive), {
        headers: { ...callerHeaders, ...headers },
        onHeader: (h) => void (responseHeaders = h),
      });
      received.push(Object.fromEntries(responseHeaders?.entries() ?? []));
      return { answer, headers: responseHeaders!, error: undefined };
    } catch (err) {
      const error = ConnectError.from(err);
      received.push(error.message, error.details, Object.fromEntries(error.metadata.entries()));
      return { answer: undefined, headers: responseHeaders, error };
    }
  }

  async function stream(transport: Transport, directive: string) {
    const chat = createClient(ChatService, transport);
    let responseHeaders: Headers | undefined;
    try {
      for await (const _ of chat.streamComplete(ask(directive), {
        headers: callerHeaders,
        onHeader: (h) => void (responseHeaders = h),
      }))
        void _;
      return { headers: responseHeaders!, error: undefined };
    } catch (err) {
      const error = ConnectError.from(err);
      received.push(error.message, error.details, Object.fromEntries(error.metadata.entries()));
      return { headers: responseHeaders, error };
    }
  }

  const accessLines = () => log.withMessage("rpc");
  const lineOf = (requestId: string) => accessLines().find((line) => line["requestId"] === requestId);

  it("writes one access line per call with the request id it returned, the route, tokens, cost and timings", async () => {
    for (const { protocol, transport } of transports) {
      const { headers, error } = await unary(transport, "[ok]");
      expect(error, protocol).toBeUndefined();
      const requestId = headers?.get("x-request-id") ?? "";
      expect(requestId, protocol).toMatch(/^[0-9a-f-]{36}$/);
      await waitUntil(() => lineOf(requestId) !== undefined, `the access line of ${requestId}`);
      const line = lineOf(requestId)!;
      expect(line, protocol).toMatchObject({
        level: 30,
        rpc: "sluice.v1.ChatService/Complete",
        protocol: protocol.startsWith("grpc-web") ? "grpc-web" : protocol.startsWith("grpc") ? "grpc" : "connect",
        code: "ok",
        model: "gpt",
        provider: "oai",
        deployment: "oai/gpt-4o",
        upstreamModel: reportedModel,
        attempts: 1,
        inputTokens: 1000,
        outputTokens: 500,
        // 1000 × $2.50/M + 500 × $10/M
        costUsd: 0.0075,
      });
      expect(line["durationMs"]).toBeGreaterThan(0);
      expect(line["upstreamMs"]).toBeGreaterThan(0);
      expect(line["upstreamMs"] as number).toBeLessThanOrEqual(line["durationMs"] as number);
    }
  });

  it("logs a stream's time to first token and its usage when it ends", async () => {
    const [{ transport }] = transports;
    const { headers, error } = await stream(transport!, "[stream]");
    expect(error).toBeUndefined();
    const requestId = headers?.get("x-request-id") ?? "";
    await waitUntil(() => lineOf(requestId) !== undefined, "the stream's access line");
    const line = lineOf(requestId)!;
    expect(line).toMatchObject({
      rpc: "sluice.v1.ChatService/StreamComplete",
      code: "ok",
      upstreamModel: reportedModel,
      inputTokens: 1200,
      outputTokens: 300,
      costUsd: 0.006,
    });
    expect(line["ttftMs"]).toBeGreaterThan(0);
    expect(line["ttftMs"] as number).toBeLessThanOrEqual(line["durationMs"] as number);
  });

  it("takes the caller's x-request-id, returns it, and names it in every error's ErrorInfo", async () => {
    for (const { protocol, transport } of transports) {
      const ok = await unary(transport, "[ok]", { "x-request-id": `req-${protocol}-ok` });
      expect(ok.headers?.get("x-request-id"), protocol).toBe(`req-${protocol}-ok`);

      const failed = await unary(transport, "[500]", { "x-request-id": `req-${protocol}-500` });
      expect(failed.error?.code, protocol).toBe(Code.Unavailable);
      const info = failed.error!.findDetails(ErrorInfoSchema);
      expect(
        info.map((i) => i.metadata["request_id"]),
        protocol,
      ).toEqual([`req-${protocol}-500`]);
      expect(info[0]?.reason, protocol).toBe("UPSTREAM_UNAVAILABLE");
      expect(failed.error!.metadata.get("x-request-id"), protocol).toBe(`req-${protocol}-500`);
      await waitUntil(() => lineOf(`req-${protocol}-500`) !== undefined, "the failed call's access line");
      expect(lineOf(`req-${protocol}-500`), protocol).toMatchObject({ code: "unavailable", model: "gpt", attempts: 1 });
    }
  });

  it("replaces an x-request-id that is too long or not a token with one of its own", async () => {
    const [{ transport }] = transports;
    for (const bad of ["x".repeat(129), "has space", "tab\there", "caf\u00e9"]) {
      const { headers } = await unary(transport!, "[ok]", { "x-request-id": bad });
      expect(headers?.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it("grpc-js: the request id comes back in the response metadata and in the error's ErrorInfo", async () => {
    const client = createGrpcJsClient(gateway.url);
    try {
      const err = await client
        .unary(ChatService.method.complete, ask("[401]"), { metadata: { ...callerHeaders, "x-request-id": "req-grpc-js" } })
        .then(
          () => undefined,
          (e: unknown) => toConnectError(e),
        );
      expect(err?.code).toBe(Code.Internal);
      received.push(err?.message, err?.details, Object.fromEntries(err?.metadata.entries() ?? []));
      expect(err!.findDetails(ErrorInfoSchema)[0]).toMatchObject({
        reason: "UPSTREAM_AUTH",
        metadata: { request_id: "req-grpc-js" },
      });
    } finally {
      client.close();
    }
  });

  it("never logs or returns a key, a caller credential, a prompt or a completion", async () => {
    for (const { transport } of transports) {
      for (const directive of ["[ok]", "[401]", "[400]", "[500]"]) await unary(transport, directive);
      for (const directive of ["[stream]", "[401]", "[400]"]) await stream(transport, directive);
    }
    // Every planted secret reached the gateway or came back from the provider...
    expect(upstream.requests.some((r) => r.headers.authorization === `Bearer ${providerKey}`)).toBe(true);
    expect(upstream.requests.some((r) => r.bodyText.includes(promptSecret))).toBe(true);
    // ... and none left it in a log line or an answer to a caller.
    await waitUntil(() => accessLines().length >= transports.length * 7, "every call's access line");
    const logged = JSON.stringify(log.lines);
    const answered = JSON.stringify(received, (_key, value: unknown) =>
      typeof value === "bigint" ? String(value) : value instanceof Uint8Array ? Buffer.from(value).toString("latin1") : value,
    );
    for (const secret of planted) expect(logged.includes(secret), `log lines contain ${secret}`).toBe(false);
    for (const secret of credentials) expect(answered.includes(secret), `answers contain ${secret}`).toBe(false);
    // The failures were logged, with their codes, not skipped.
    expect(accessLines().filter((line) => line["code"] === "internal").length).toBeGreaterThan(0);
    expect(accessLines().filter((line) => line["code"] === "invalid_argument").length).toBeGreaterThan(0);
  });
});

describe("breaker state changes", () => {
  it("are logged once per transition, not once per call they affect", async () => {
    const upstream = await startFakeUpstream(() =>
      jsonResponse(500, { error: { message: "down", type: "server_error", param: null, code: null } }),
    );
    const log = createCapturedLogger("info");
    const gateway = await startSluice(
      {
        providers: { oai: { type: "openai", baseUrl: `${upstream.origin}/v1`, apiKey: "k" } },
        models: { gpt: { deployments: [{ provider: "oai", model: "gpt-4o" }], retry: { maxAttempts: 1 } } },
        resilience: { breaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 600_000 } },
      },
      { logger: log.logger },
    );
    const [connect, ...others] = allProtocolTransports(gateway.url);
    for (const other of others) other.close();
    try {
      const chat = createClient(ChatService, connect!.transport);
      const codes: (Code | "ok")[] = [];
      for (let i = 0; i < 12; i++) {
        codes.push(
          await chat.complete(ask("[500]")).then(
            () => "ok" as const,
            (e: unknown) => ConnectError.from(e).code,
          ),
        );
      }
      // The breaker opened after the first failures; the calls after it were refused without a request.
      expect(upstream.requests.length).toBeLessThan(12);
      expect(codes.every((code) => code === Code.Unavailable)).toBe(true);
      const opened = log.withMessage("circuit breaker opened: deployment skipped");
      expect(opened).toEqual([expect.objectContaining({ level: 40, deployment: "oai/gpt-4o", state: "open" })]);
    } finally {
      connect!.close();
      await gateway.close();
      await upstream.close();
    }
  });
});
