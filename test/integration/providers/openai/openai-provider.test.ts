import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CompleteRequestSchema, type StreamCompleteResponse } from "../../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../../../gen/google/rpc/error_details_pb.js";
import { configSchema, type OpenAIProviderConfig } from "../../../../src/config/schema.js";
import type { UpstreamError } from "../../../../src/errors/gateway-error.js";
import type { Provider, UpstreamCall } from "../../../../src/providers/provider.js";
import { createOpenAIProvider } from "../../../../src/providers/openai/openai-provider.js";
import {
  jsonResponse,
  sseResponse,
  startFakeUpstream,
  type FakeUpstream,
  type ScriptedResponse,
} from "../../../helpers/fake-upstream.js";
import {
  capturedErrorBodies,
  createChatRequestValidator,
  nonstreamRecordings,
  readSseFixture,
} from "../../../fixtures/providers/openai/fixtures.js";
import { richBody, richRequest } from "../../../fixtures/providers/openai/requests.js";

const key = "sk-test-0123456789abcdef";
const spec = createChatRequestValidator();
const completionBody = nonstreamRecordings()["py_chat_completions_recorded.json: test_parse_nothing"];
const transcript = readSseFixture("py_plain_text_usage.sse");
/** The transcript as its SSE events, one write each, so faults land between events. */
const transcriptEvents = transcript.split(/(?<=\n\n)/);

let fake: FakeUpstream;
const providers: Provider[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream();
});
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  fake.requests.length = 0;
  fake.aborted.length = 0;
});
afterAll(async () => {
  await fake.close();
});

function makeProvider(overrides: Record<string, unknown> = {}, name = "oai"): Provider {
  const config = configSchema.parse({
    providers: { [name]: { type: "openai", baseUrl: `${fake.origin}/v1`, apiKey: key, ...overrides } },
    models: {},
  }).providers[name] as OpenAIProviderConfig;
  const provider = createOpenAIProvider(name, config);
  providers.push(provider);
  return provider;
}

const minimal = create(CompleteRequestSchema, {
  model: "alias",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hello" } }] }],
});

function call(extra: Partial<UpstreamCall> = {}): UpstreamCall {
  return { model: "gpt-4o", signal: new AbortController().signal, ...extra };
}

async function collect(stream: AsyncIterable<StreamCompleteResponse>): Promise<StreamCompleteResponse[]> {
  const events: StreamCompleteResponse[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

/** The error a stream ends with, and the events it yielded before. */
async function streamFailure(stream: AsyncIterable<StreamCompleteResponse>): Promise<{ error: ConnectError; kinds: string[] }> {
  const kinds: string[] = [];
  try {
    for await (const event of stream) kinds.push(event.event.case ?? "none");
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return { error: err as ConnectError, kinds };
  }
  throw new Error(`expected the stream to fail; it yielded ${kinds.join(", ")}`);
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected a rejection");
}

const reasonOf = (error: ConnectError) => error.findDetails(ErrorInfoSchema)[0]?.reason;
const retryDelayMs = (error: ConnectError) => {
  const delay = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay === undefined ? undefined : Number(delay.seconds) * 1000 + delay.nanos / 1e6;
};

/** A promise with its resolver, for waiting on an event instead of a timer. */
function signalled<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("the request sent upstream", () => {
  it("POSTs the translated body to {baseUrl}/chat/completions with the bearer key and the configured headers", async () => {
    const provider = makeProvider({ headers: { "OpenAI-Organization": "org-1" } });
    fake.respond(() => jsonResponse(200, completionBody));
    await provider.complete(richRequest(), call());

    const [sent] = fake.requests;
    expect(sent!.method).toBe("POST");
    expect(sent!.path).toBe("/v1/chat/completions");
    expect(sent!.headers).toMatchObject({
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json",
      "openai-organization": "org-1",
    });
    expect(sent!.body).toEqual({ ...richBody, model: "gpt-4o" });
    expect(spec.errors(sent!.body)).toEqual([]);
    expect(spec.undeclaredKeys(sent!.body)).toEqual([]);
    // The key goes in its header and nowhere else.
    expect(sent!.path).not.toContain(key);
    expect(sent!.bodyText).not.toContain(key);
  });

  it("sends a streaming request the spec accepts, asking for usage", async () => {
    const provider = makeProvider();
    fake.respond(() => sseResponse([transcript]));
    await collect(provider.stream(richRequest(), call()));
    const [sent] = fake.requests;
    expect(sent!.headers["accept"]).toBe("text/event-stream");
    expect(sent!.body).toEqual({ ...richBody, model: "gpt-4o", stream: true, stream_options: { include_usage: true } });
    expect(spec.errors(sent!.body)).toEqual([]);
    expect(spec.undeclaredKeys(sent!.body)).toEqual([]);
  });

  it("sends a minimal request the spec accepts", async () => {
    const provider = makeProvider();
    fake.respond(() => jsonResponse(200, completionBody));
    await provider.complete(minimal, call());
    expect(fake.requests[0]!.body).toEqual({ model: "gpt-4o", messages: [{ role: "user", content: "Hello" }] });
    expect(spec.errors(fake.requests[0]!.body)).toEqual([]);
  });

  it("speaks Azure OpenAI: the key in api-key, api-version in the query, no Authorization", async () => {
    const provider = makeProvider({
      baseUrl: `${fake.origin}/openai/deployments/gpt-4o-prod`,
      apiKeyHeader: "api-key",
      query: { "api-version": "2024-10-21" },
    });
    fake.respond(() => jsonResponse(200, completionBody));
    await provider.complete(minimal, call());
    const [sent] = fake.requests;
    expect(sent!.path).toBe("/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    expect(sent!.headers["api-key"]).toBe(key);
    expect(sent!.headers["authorization"]).toBeUndefined();
  });

  it("sends no credentials to a server configured without a key, and never lets a configured header replace ours", async () => {
    const keyless = makeProvider({ apiKey: undefined }, "local");
    fake.respond(() => jsonResponse(200, completionBody));
    await keyless.complete(minimal, call());
    expect(fake.requests[0]!.headers["authorization"]).toBeUndefined();

    const provider = makeProvider({ headers: { Authorization: "Bearer sk-not-ours-000000" } });
    await provider.complete(minimal, call());
    expect(fake.requests[1]!.headers["authorization"]).toBe(`Bearer ${key}`);
  });

  it("rejects a setting OpenAI lacks with INVALID_ARGUMENT naming it, and sends nothing", async () => {
    const provider = makeProvider();
    fake.respond(() => jsonResponse(200, completionBody));
    const withTopK = create(CompleteRequestSchema, { ...minimal, topK: 40 });
    for (const attempt of [provider.complete(withTopK, call()), collect(provider.stream(withTopK, call()))]) {
      const error = await rejection(attempt);
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description])).toEqual([
        ["top_k", "not supported by provider oai (openai)"],
      ]);
    }
    expect(fake.requests).toHaveLength(0);
  });
});

describe("upstream failures", () => {
  async function unaryError(script: ScriptedResponse): Promise<UpstreamError> {
    fake.respond(() => script);
    return (await rejection(makeProvider().complete(minimal, call()))) as UpstreamError;
  }

  it("429 with retry-after seconds: RESOURCE_EXHAUSTED with RetryInfo", async () => {
    const error = await unaryError(jsonResponse(429, capturedErrorBodies.rate_limit_exceeded_429, { "retry-after": "3" }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(reasonOf(error)).toBe("UPSTREAM_RATE_LIMITED");
    expect(error.failure.retryable).toBe(true);
    expect(error.retryAfterMs).toBe(3000);
    expect(retryDelayMs(error)).toBe(3000);
  });

  it("429 with retry-after as an HTTP date", async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    const error = await unaryError(jsonResponse(429, capturedErrorBodies.rate_limit_exceeded_429, { "retry-after": at }));
    expect(error.code).toBe(Code.ResourceExhausted);
    // An HTTP date has whole seconds: 29–30 s from now, less the test's own runtime.
    expect(error.retryAfterMs).toBeGreaterThan(25_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it("429 with retry-after-ms, which wins over retry-after", async () => {
    const error = await unaryError(
      jsonResponse(429, capturedErrorBodies.rate_limit_exceeded_429, { "retry-after-ms": "1500.5", "retry-after": "9" }),
    );
    expect(error.retryAfterMs).toBe(1501);
    expect(retryDelayMs(error)).toBe(1501);
  });

  it("401: INTERNAL UPSTREAM_AUTH without the provider's message (it echoes part of the key)", async () => {
    const error = await unaryError(jsonResponse(401, capturedErrorBodies.invalid_api_key_401));
    expect(error.code).toBe(Code.Internal);
    expect(reasonOf(error)).toBe("UPSTREAM_AUTH");
    expect(error.failure.failover).toBe(true);
    expect(error.message).not.toContain("sk-");
    expect(error.message).not.toContain("Incorrect API key");
    expect(error.message).not.toContain(key);
  });

  it("400 context_length_exceeded (the recorded body): INVALID_ARGUMENT CONTEXT_LENGTH_EXCEEDED", async () => {
    const error = await unaryError(jsonResponse(400, capturedErrorBodies.context_length_exceeded_400));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(reasonOf(error)).toBe("CONTEXT_LENGTH_EXCEEDED");
    expect(error.failure.retryable).toBe(false);
    expect(error.message).toContain("maximum context length is 4097 tokens");
  });

  it("500 and 503: UNAVAILABLE, retryable; x-should-retry overrides the status", async () => {
    const serverError = { error: { message: "The server had an error", type: "server_error", param: null, code: null } };
    for (const status of [500, 503]) {
      const error = await unaryError(jsonResponse(status, serverError));
      expect(error.code, String(status)).toBe(Code.Unavailable);
      expect(error.failure.retryable).toBe(true);
    }
    expect((await unaryError(jsonResponse(503, serverError, { "x-should-retry": "false" }))).failure.retryable).toBe(false);
    const retryable400 = await unaryError(
      jsonResponse(400, { error: { message: "m", type: "invalid_request_error" } }, { "x-should-retry": "true" }),
    );
    expect(retryable400.code).toBe(Code.InvalidArgument);
    expect(retryable400.failure.retryable).toBe(true);
  });

  it("a connection reset before the headers: UNAVAILABLE UPSTREAM_CONNECTION, unary and streaming", async () => {
    const error = await unaryError({ resetBeforeHeaders: true });
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_CONNECTION");
    fake.respond(() => ({ resetBeforeHeaders: true }));
    const { error: streamError, kinds } = await streamFailure(makeProvider().stream(minimal, call()));
    expect(reasonOf(streamError)).toBe("UPSTREAM_CONNECTION");
    expect(kinds).toEqual([]);
  });

  it("a non-2xx answer to a stream request fails before any event", async () => {
    fake.respond(() => jsonResponse(429, capturedErrorBodies.rate_limit_exceeded_429, { "retry-after": "1" }));
    const { error, kinds } = await streamFailure(makeProvider().stream(minimal, call()));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(kinds).toEqual([]);
  });

  it("a unary answer whose socket is cut mid-body: UNAVAILABLE, retryable, never a parsed answer", async () => {
    const text = JSON.stringify(completionBody);
    const error = await unaryError({
      status: 200,
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) },
      chunks: [text.slice(0, 40), text.slice(40)],
      resetAfterChunks: 1,
    });
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_CONNECTION");
    expect(error.failure.retryable).toBe(true);
  });

  it("a unary answer slower than headersMs: UNAVAILABLE UPSTREAM_TIMEOUT, and the request is dropped upstream", async () => {
    fake.respond(() => ({ ...jsonResponse(200, completionBody), delayBeforeHeadersMs: 5_000 }));
    const upstreamSawClose = fake.nextAbort();
    const error = (await rejection(
      makeProvider({ timeouts: { connectMs: 1000, headersMs: 150, bodyIdleMs: 1000 } }).complete(minimal, call()),
    )) as UpstreamError;
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_TIMEOUT");
    await upstreamSawClose;
  });

  it("a 429 whose body breaks off is still the 429, with its Retry-After", async () => {
    const text = JSON.stringify(capturedErrorBodies.rate_limit_exceeded_429);
    const error = await unaryError({
      status: 429,
      headers: { "content-type": "application/json", "retry-after": "2", "content-length": String(Buffer.byteLength(text)) },
      chunks: [text.slice(0, 10), text.slice(10)],
      resetAfterChunks: 1,
    });
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.retryAfterMs).toBe(2_000);
  });

  it("a 200 body that is not JSON: INTERNAL UPSTREAM_MALFORMED", async () => {
    const error = await unaryError({
      status: 200,
      headers: { "content-type": "application/json" },
      chunks: ["<html>oops</html>"],
    });
    expect(error.code).toBe(Code.Internal);
    expect(reasonOf(error)).toBe("UPSTREAM_MALFORMED");
  });

  it("a socket cut mid-stream ends with an error, never done, after the events already received", async () => {
    fake.respond(() => sseResponse(transcriptEvents.slice(0, 3), { stallAfterChunks: true }));
    const iterator = makeProvider().stream(minimal, call())[Symbol.asyncIterator]();
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) kinds.push((await iterator.next()).value?.event.case);
    expect(kinds).toEqual(["start", "delta", "delta"]);
    fake.resetConnections();
    const error = await rejection(iterator.next());
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
    expect((error as UpstreamError).failure.retryable).toBe(true);
  });

  it("a socket reset by the server mid-body ends with an error, never done", async () => {
    // The reset can overtake bytes the client had not read yet: which events arrive first
    // is up to the socket, but the end is always the error.
    fake.respond(() => sseResponse(transcriptEvents, { resetAfterChunks: 10 }));
    const { error, kinds } = await streamFailure(makeProvider().stream(minimal, call()));
    expect(kinds).not.toContain("done");
    expect(error.code).toBe(Code.Unavailable);
    expect(reasonOf(error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
  });

  it("a stream that ends cleanly without [DONE] — after finish_reason and usage — is a cut, not done", async () => {
    const withoutDone = transcriptEvents.filter((event) => !event.startsWith("data: [DONE]"));
    expect(withoutDone).toHaveLength(transcriptEvents.length - 1);
    fake.respond(() => sseResponse(withoutDone));
    const { error, kinds } = await streamFailure(makeProvider().stream(minimal, call()));
    expect(kinds).not.toContain("done");
    expect(kinds.filter((k) => k === "delta")).toHaveLength(30);
    expect(reasonOf(error)).toBe("UPSTREAM_STREAM_INCOMPLETE");
  });

  it("an error object inside the stream ends it with that error, classified", async () => {
    const inStream = `data: ${JSON.stringify({ error: { message: "The server had an error while processing your request.", type: "server_error", param: null, code: null } })}\n\n`;
    fake.respond(() => sseResponse([...transcriptEvents.slice(0, 3), inStream, ...transcriptEvents.slice(3)]));
    const serverError = await streamFailure(makeProvider().stream(minimal, call()));
    expect(serverError.kinds).toEqual(["start", "delta", "delta"]);
    expect(serverError.error.code).toBe(Code.Unavailable);
    expect(serverError.error.message).toContain("The server had an error");

    const eventError = `event: error\ndata: ${JSON.stringify({ error: { message: "Rate limit reached", type: "tokens", code: "rate_limit_exceeded" } })}\n\n`;
    fake.respond(() => sseResponse([eventError]));
    const rateLimited = await streamFailure(makeProvider().stream(minimal, call()));
    expect(rateLimited.kinds).toEqual([]);
    expect(rateLimited.error.code).toBe(Code.ResourceExhausted);
  });

  it("a JSON answer to a stream request: its error when it is one, else UPSTREAM_MALFORMED", async () => {
    fake.respond(() => jsonResponse(200, capturedErrorBodies.context_length_exceeded_400));
    const error = await streamFailure(makeProvider().stream(minimal, call()));
    expect(reasonOf(error.error)).toBe("CONTEXT_LENGTH_EXCEEDED");
    fake.respond(() => jsonResponse(200, completionBody));
    expect(reasonOf((await streamFailure(makeProvider().stream(minimal, call()))).error)).toBe("UPSTREAM_MALFORMED");
  });

  it("a stream idle past bodyIdleMs: UNAVAILABLE UPSTREAM_TIMEOUT", async () => {
    fake.respond(() => sseResponse(transcriptEvents.slice(0, 2), { stallAfterChunks: true }));
    const provider = makeProvider({ timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 200 } });
    const { error, kinds } = await streamFailure(provider.stream(minimal, call()));
    expect(kinds).toEqual(["start", "delta"]);
    expect(reasonOf(error)).toBe("UPSTREAM_TIMEOUT");
  });
});

describe("cancellation", () => {
  it("aborting the call's signal during a stalled stream closes the upstream connection", async () => {
    fake.respond(() => sseResponse(transcriptEvents.slice(0, 2), { stallAfterChunks: true }));
    const controller = new AbortController();
    const iterator = makeProvider()
      .stream(minimal, call({ signal: controller.signal }))
      [Symbol.asyncIterator]();
    expect((await iterator.next()).value?.event.case).toBe("start");
    expect((await iterator.next()).value?.event.case).toBe("delta");
    const upstreamSawClose = fake.nextAbort();
    const pending = iterator.next();
    controller.abort();
    const error = await rejection(pending);
    expect(error.code).toBe(Code.Canceled);
    expect((await upstreamSawClose).path).toBe("/v1/chat/completions");
  });

  it("an abort carrying the caller's deadline error surfaces that error", async () => {
    fake.respond(() => sseResponse(transcriptEvents.slice(0, 1), { stallAfterChunks: true }));
    const controller = new AbortController();
    const iterator = makeProvider()
      .stream(minimal, call({ signal: controller.signal }))
      [Symbol.asyncIterator]();
    await iterator.next();
    const upstreamSawClose = fake.nextAbort();
    const pending = iterator.next();
    controller.abort(new ConnectError("deadline exceeded", Code.DeadlineExceeded));
    expect((await rejection(pending)).code).toBe(Code.DeadlineExceeded);
    await upstreamSawClose;
  });

  it("aborting a unary call while waiting for headers closes the upstream connection", async () => {
    const arrived = signalled();
    fake.respond(() => {
      arrived.resolve();
      return { ...jsonResponse(200, completionBody), delayBeforeHeadersMs: 5_000 };
    });
    const controller = new AbortController();
    const pending = makeProvider().complete(minimal, call({ signal: controller.signal }));
    await arrived.promise;
    const upstreamSawClose = fake.nextAbort();
    controller.abort();
    expect((await rejection(pending)).code).toBe(Code.Canceled);
    await upstreamSawClose;
  });

  it("stopping iteration early (the caller went away) closes the upstream connection", async () => {
    fake.respond(() => sseResponse(transcriptEvents.slice(0, 3), { stallAfterChunks: true }));
    const upstreamSawClose = fake.nextAbort();
    const seen: string[] = [];
    for await (const event of makeProvider().stream(minimal, call())) {
      seen.push(event.event.case ?? "none");
      if (event.event.case === "delta") break;
    }
    expect(seen).toEqual(["start", "delta"]);
    expect((await upstreamSawClose).path).toBe("/v1/chat/completions");
  });

  it("a unary call cancelled while queued for a pool connection never reaches upstream", async () => {
    const arrived = signalled();
    fake.respond(() => {
      arrived.resolve();
      return { ...jsonResponse(200, completionBody), delayBeforeHeadersMs: 300 };
    });
    const provider = makeProvider({ connections: 1 });
    const first = provider.complete(minimal, call());
    await arrived.promise;
    const controller = new AbortController();
    const queued = provider.complete(minimal, call({ signal: controller.signal }));
    controller.abort();
    expect((await rejection(queued)).code).toBe(Code.Canceled);
    await first;
    expect(fake.requests).toHaveLength(1);
  });

  it("a signal aborted before the call sends nothing", async () => {
    const controller = new AbortController();
    controller.abort();
    fake.respond(() => jsonResponse(200, completionBody));
    expect((await rejection(makeProvider().complete(minimal, call({ signal: controller.signal })))).code).toBe(Code.Canceled);
    expect(fake.requests).toHaveLength(0);
  });
});

describe("connection reuse", () => {
  it("reuses the connection after done, even when the response ends after [DONE] arrived", async () => {
    // The response's end comes 50 ms after [DONE]: a consumer that stops at done must not
    // destroy the body (closing the socket), only drain it. One connection, no aborts.
    fake.respond(() => sseResponse(transcriptEvents, { delayBeforeEndMs: 50 }));
    const provider = makeProvider({ connections: 1 });
    const before = fake.connectionCount;
    for (let i = 0; i < 2; i++) {
      const kinds: string[] = [];
      for await (const event of provider.stream(minimal, call())) {
        kinds.push(event.event.case ?? "none");
        if (event.event.case === "done") break;
      }
      expect(kinds.at(-1)).toBe("done");
    }
    fake.respond(() => jsonResponse(200, completionBody));
    await provider.complete(minimal, call());
    expect(fake.requests).toHaveLength(3);
    expect(fake.aborted).toHaveLength(0);
    expect(fake.connectionCount - before).toBe(1);
  });

  it("does not wait for the end of a response that stalls after [DONE]; close() cuts the leftover", async () => {
    fake.respond(() => sseResponse(transcriptEvents, { stallAfterChunks: true }));
    const provider = makeProvider();
    const events = await collect(provider.stream(minimal, call()));
    expect(events.at(-1)?.event.case).toBe("done");
    // The response is still open upstream (being drained), until the provider closes.
    expect(fake.aborted).toHaveLength(0);
    const upstreamSawClose = fake.nextAbort();
    await provider.close();
    await upstreamSawClose;
  });
});
