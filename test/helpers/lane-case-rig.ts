import * as net from "node:net";
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  Http2SessionManager,
  compressionBrotli,
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  ChatService,
  CompleteRequestSchema,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { DemoProvider } from "../../src/providers/demo/demo-provider.js";
import { compactEvents, errorFacts, responseSummary, type CompleteRequestInit, type ErrorFacts } from "./chat-callers.js";
import { createGrpcJsClient, toConnectError } from "./protocol-clients.js";
import { startSluice, type StartedSluice } from "./start-sluice.js";

/*
 * The rig behind test/integration/lane-cases.test.ts: a Sluice server with a test
 * interceptor in front of the route table's chain (and a probe behind it), in one of two
 * modes — fast lanes on, or every call through connect-node (the reference) — and one
 * caller per protocol that reports what a caller can observe, in one comparable shape.
 */

export type Mode = "lanes" | "connect-node";

export const caseProtocols = [
  "connect-json-h1",
  "connect-json-h2",
  "connect-binary-h1",
  "connect-binary-h2",
  "grpc-h2",
  "grpc-web-h1",
  "grpc-web-h2",
  "grpc-js-h2c",
  // JSON over gRPC and gRPC-Web (connect-es `useBinaryFormat: false`).
  "grpc-json-h2",
  "grpc-web-json-h1",
  // Compressed requests (every message, `compressMinBytes: 0`); connect-es accepts gzip and br answers.
  "connect-json-gzip-h1",
  "grpc-br-h2",
  "grpc-web-gzip-h2",
] as const;
export type CaseProtocol = (typeof caseProtocols)[number];

/**
 * Which calls a fast lane takes (README "Fast lanes"): Connect unary and streaming, JSON
 * and binary; gRPC over HTTP/2 and gRPC-Web (and its text mode), binary and JSON; gzip
 * and br requests on each. The rest is connect-node's.
 */
export const laneServes: Readonly<Record<CaseProtocol, { readonly unary: boolean; readonly stream: boolean }>> = {
  "connect-json-h1": { unary: true, stream: true },
  "connect-json-h2": { unary: true, stream: true },
  "connect-binary-h1": { unary: true, stream: true },
  "connect-binary-h2": { unary: true, stream: true },
  "grpc-h2": { unary: true, stream: true },
  "grpc-web-h1": { unary: true, stream: true },
  "grpc-web-h2": { unary: true, stream: true },
  "grpc-js-h2c": { unary: true, stream: true },
  "grpc-json-h2": { unary: true, stream: true },
  "grpc-web-json-h1": { unary: true, stream: true },
  "connect-json-gzip-h1": { unary: true, stream: true },
  "grpc-br-h2": { unary: true, stream: true },
  "grpc-web-gzip-h2": { unary: true, stream: true },
};

/** "PERMISSION_DENIED", as gRPC spells a code; "OK" for success. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return Code[code]!.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? "_" : "") + c).toUpperCase();
}

/* ------------------------------------------------------------------ server side */

/** What the outermost (test) interceptor and the innermost probe saw of one call. */
export interface ServerView {
  /**
   * "lane" when a fast lane built the interceptor request: the lanes' request carries its
   * handler context (`context`, lane-routes.ts), connect-node's plain request object does
   * not. Read by the test interceptor only: nothing is counted on the production path.
   */
  readonly servedBy: "lane" | "connect-node";
  readonly url: string;
  /** Request header names as interceptors see them (sorted, as Headers iterates). */
  readonly requestHeaderNames: readonly string[];
  /** The `x-case` request header. */
  readonly caseHeader: string | null;
  /** The probe right before the implementation saw the call, and the `x-case-route` header it saw. */
  inner: { readonly route: string | null } | undefined;
  /** How the call ended for the outermost interceptor: "OK", a code name, or "STOPPED" (the consumer returned early). */
  outcome: string | undefined;
}

class CallLog {
  private readonly views = new Map<string, ServerView>();
  private readonly waiters = new Map<string, { promise: Promise<string>; resolve: (outcome: string) => void }>();

  open(id: string, view: ServerView): void {
    this.views.set(id, view);
  }

  inner(id: string, route: string | null): void {
    const view = this.views.get(id);
    if (view !== undefined) view.inner = { route };
  }

  end(id: string, outcome: string): void {
    const view = this.views.get(id);
    if (view === undefined || view.outcome !== undefined) return;
    view.outcome = outcome;
    this.waiter(id).resolve(outcome);
  }

  get(id: string): ServerView | undefined {
    return this.views.get(id);
  }

  ended(id: string): Promise<string> {
    return this.waiter(id).promise;
  }

  private waiter(id: string) {
    let waiter = this.waiters.get(id);
    if (waiter === undefined) {
      let resolve!: (outcome: string) => void;
      const promise = new Promise<string>((r) => (resolve = r));
      waiter = { promise, resolve };
      this.waiters.set(id, waiter);
    }
    return waiter;
  }
}

/** The error the test interceptor rejects with (`x-case-action: reject`), before anything else runs. */
export function caseRejection(caseHeader: string | null): ConnectError {
  return new ConnectError("case interceptor: permission denied", Code.PermissionDenied, { "x-case-rejected": "yes" }, [
    {
      desc: ErrorInfoSchema,
      value: { reason: "CASE_REJECTED", domain: "lane-cases.test", metadata: { case: caseHeader ?? "" } },
    },
  ]);
}

/**
 * The test interceptor, outermost. By `x-case-action`:
 * - `reject`: throws caseRejection() without calling next;
 * - `rewrite-request`: hands next a new request object whose headers add `x-case-route: beta`;
 * - `spread-request`: hands next `{ ...req, message }`, the prompt rewritten (headers not restated);
 * - otherwise: sets `x-case-header` (and `x-case-echo`, the `x-case` request header) on the
 *   response headers and `x-case-trailer` on the trailers; a stream also gets `x-case-end`
 *   (its outcome) as a trailer when it ends. An error gets `x-case-seen` in its metadata.
 * Every call's view and outcome go to the log, by its `x-case-call` request header.
 */
function caseInterceptor(log: CallLog): Interceptor {
  return (next) => async (req) => {
    const id = req.header.get("x-case-call") ?? "";
    const caseHeader = req.header.get("x-case");
    log.open(id, {
      servedBy: "context" in req ? "lane" : "connect-node",
      url: req.url,
      requestHeaderNames: [...req.header.keys()],
      caseHeader,
      inner: undefined,
      outcome: undefined,
    });
    const action = req.header.get("x-case-action");
    if (action === "reject") {
      log.end(id, codeName(Code.PermissionDenied));
      throw caseRejection(caseHeader);
    }
    let forward = req;
    if (action === "rewrite-request") {
      const header = new Headers(req.header);
      header.set("x-case-route", "beta");
      forward = { ...req, header };
    } else if (action === "spread-request") {
      forward = req.stream
        ? { ...req, message: mapMessages(req.message, rewritePrompt) }
        : { ...req, message: rewritePrompt(req.message) };
    }
    let res;
    try {
      res = await next(forward);
    } catch (err) {
      const error = ConnectError.from(err);
      error.metadata.set("x-case-seen", codeName(error.code));
      log.end(id, codeName(error.code));
      throw error;
    }
    res.header.set("x-case-header", "from-interceptor");
    if (caseHeader !== null) res.header.set("x-case-echo", caseHeader);
    res.trailer.set("x-case-trailer", "from-interceptor");
    if (!res.stream) {
      log.end(id, "OK");
      return res;
    }
    return { ...res, message: observeStream(res.message, res.trailer, (outcome) => log.end(id, outcome)) };
  };
}

export const rewrittenPrompt = "rewritten by the interceptor";

function rewritePrompt(message: unknown): CompleteRequest {
  return create(CompleteRequestSchema, {
    model: (message as CompleteRequest).model,
    messages: [{ role: Role.USER, content: [{ part: { case: "text", value: rewrittenPrompt } }] }],
  });
}

async function* mapMessages<T, U>(messages: AsyncIterable<T>, map: (message: T) => U): AsyncGenerator<U> {
  for await (const message of messages) yield map(message);
}

/** Passes a stream through and reports how it ended; sets its outcome as the `x-case-end` trailer. */
async function* observeStream<T>(
  messages: AsyncIterable<T>,
  trailer: Headers,
  ended: (outcome: string) => void,
): AsyncGenerator<T> {
  // Still this when the finally runs: the consumer called return() before the end.
  let outcome = "STOPPED";
  try {
    for await (const message of messages) yield message;
    outcome = "OK";
    trailer.set("x-case-end", outcome);
  } catch (err) {
    const error = ConnectError.from(err);
    outcome = codeName(error.code);
    trailer.set("x-case-end", outcome);
    throw error;
  } finally {
    ended(outcome);
  }
}

/** Innermost, right before the implementation: proves whether a call got that far, and what headers it carried. */
function innerProbe(log: CallLog): Interceptor {
  return (next) => async (req) => {
    // A request handed on without headers (a spread lane request) shows as a call that never got here.
    const header = req.header as Headers | undefined;
    log.inner(header?.get("x-case-call") ?? "", header?.get("x-case-route") ?? null);
    return next(req);
  };
}

/**
 * Providers and models every case uses: `demo` answers at once (and routes `x-case-route:
 * beta` to another deployment, so the implementation's view of request headers shows in
 * `sluice-upstream-model`), `slow` streams a word every `slowWordDelayMs`, `stuck` takes
 * far longer than any test to answer (unary deadline, cancel, drain).
 */
export const slowWordDelayMs = 40;
const configDocument = {
  providers: {
    demo: { type: "demo", wordDelayMs: 0 },
    slow: { type: "demo", wordDelayMs: slowWordDelayMs },
    stuck: { type: "demo", wordDelayMs: 0, responseDelayMs: 60_000 },
  },
  models: {
    demo: {
      deployments: [
        { provider: "demo", model: "sluice-demo-1" },
        { provider: "demo", model: "sluice-demo-beta" },
      ],
      routes: [{ match: { headers: { "x-case-route": "beta" } }, deployments: ["demo/sluice-demo-beta"] }],
    },
    slow: { deployments: [{ provider: "slow", model: "sluice-slow-1" }] },
    stuck: { deployments: [{ provider: "stuck", model: "sluice-stuck-1" }] },
  },
};

export interface CaseServer {
  readonly mode: Mode;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly started: StartedSluice;
  view(id: string): ServerView | undefined;
  /** Resolves with the call's outcome once the test interceptor saw it end. */
  ended(id: string): Promise<string>;
  /** Calls any demo provider started so far (the implementation reached "upstream"). */
  providerStarts(): number;
  /** Resolves when a demo provider starts a call (the next `count` of them). */
  providerStarted(count?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCaseServer(mode: Mode, server: { drainTimeoutMs?: number } = {}): Promise<CaseServer> {
  const log = new CallLog();
  const started = await startSluice(configDocument, {
    server,
    fastLanes: mode === "lanes",
    interceptors: (chain) => [caseInterceptor(log), ...chain, innerProbe(log)],
  });
  let starts = 0;
  const waiters: Array<{ at: number; resolve: () => void }> = [];
  for (const provider of started.sluice.providers.values()) {
    (provider as DemoProvider).events.on("started", () => {
      starts++;
      for (const waiter of waiters.filter((w) => w.at <= starts)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    });
  }
  return {
    mode,
    url: started.url,
    port: started.port,
    started,
    view: (id) => log.get(id),
    ended: (id) => log.ended(id),
    providerStarts: () => starts,
    providerStarted: (count = 1) => new Promise((resolve) => waiters.push({ at: starts + count, resolve })),
    close: () => started.close(),
  };
}

/** Resolves with the error code of a TCP connect to the port (undefined: it connected). */
export function tcpConnectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

/* ------------------------------------------------------------------ client side */

/** Every case call's `x-request-id` (unless its headers say otherwise): answers and error details echo it on every lane. */
export const caseRequestId = "lane-case-request";

export interface CaseCallOptions {
  /** Sent as `x-case-call`; generated when absent. */
  readonly id?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The caller's own deadline: the client enforces it and sends it. */
  readonly timeoutMs?: number;
  /** Only the protocol's deadline header, so the server alone enforces it. */
  readonly deadlineHeaderMs?: number;
  /** Cancels the call (as the protocol's client does) when this resolves. */
  readonly cancelWhen?: Promise<unknown>;
  /** Streams: cancels right after this many events. */
  readonly cancelAfterEvents?: number;
  /** connect-es: the abort reason (its HTTP/2 client resets with CANCEL only for a CANCELED one). */
  readonly cancelReason?: unknown;
  /** Streams: called with the number of events received so far. */
  readonly onEvent?: (count: number) => void;
}

/** What a caller observed, transport specifics left out. */
export interface ClientView {
  readonly id: string;
  /** "OK" or the code name. */
  readonly code: string;
  readonly message: string | undefined;
  readonly details: Omit<ErrorFacts, "code"> | undefined;
  /** Response headers, as onHeader / grpc-js "metadata" delivered them (none: {}). */
  readonly headers: Record<string, string>;
  /** Trailers of a call that succeeded (onTrailer / grpc-js status metadata). */
  readonly trailers: Record<string, string>;
  /** An error's metadata (connect-es merges headers and trailers into it). */
  readonly errorMetadata: Record<string, string> | undefined;
  /** Stream events (compact, random ids left out) or the unary answer's summary. */
  readonly events: readonly unknown[];
}

export interface CaseCaller {
  readonly protocol: CaseProtocol;
  unary(request: CompleteRequestInit, options?: CaseCallOptions): Promise<ClientView>;
  stream(request: CompleteRequestInit, options?: CaseCallOptions): Promise<ClientView>;
  close(): void;
}

/**
 * Transport details a comparison ignores: framing and negotiation headers and every
 * protocol's own status headers (grpc-status, connect-*), date and lengths.
 */
const transportHeader =
  /^(?:date|content-(?:length|type|encoding)|connection|keep-alive|transfer-encoding|vary|te|trailer|accept-encoding|grpc-.+|connect-.+|access-control-.+)$/;

function headerView(headers: Headers | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  headers?.forEach((value, key) => {
    if (!transportHeader.test(key)) out[key] = value;
  });
  return out;
}

function metadataView(metadata: grpc.Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata?.getMap() ?? {})) {
    if (typeof value === "string" && !transportHeader.test(key)) out[key] = value;
  }
  return out;
}

function streamEvents(events: readonly StreamCompleteResponse[]): unknown[] {
  return compactEvents(events).map((event) => (event[0] === "start" ? ["start", event[2], event[3]] : event));
}

function unaryEvents(response: CompleteResponse): unknown[] {
  const { id: _random, ...summary } = responseSummary(response);
  return [summary];
}

function details(error: ConnectError): Omit<ErrorFacts, "code"> {
  const { code: _code, ...facts } = errorFacts(error, { keepRequestId: true });
  return facts;
}

function errorView(id: string, error: ConnectError, headers: Record<string, string>, events: readonly unknown[]): ClientView {
  return {
    id,
    code: codeName(error.code),
    message: error.rawMessage,
    details: details(error),
    headers,
    trailers: {},
    errorMetadata: headerView(error.metadata),
    events,
  };
}

function timeoutHeader(protocol: CaseProtocol, ms: number): Record<string, string> {
  return protocol.startsWith("connect-") ? { "connect-timeout-ms": String(ms) } : { "grpc-timeout": `${ms}m` };
}

function connectEsTransport(protocol: CaseProtocol, baseUrl: string): { transport: Transport; close(): void } {
  const h2 = (): Http2SessionManager => new Http2SessionManager(baseUrl);
  switch (protocol) {
    case "connect-json-h1":
      return { transport: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }), close() {} };
    case "connect-binary-h1":
      return { transport: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }), close() {} };
    case "connect-json-h2": {
      const sessionManager = h2();
      return {
        transport: createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: false, sessionManager }),
        close: () => sessionManager.abort(),
      };
    }
    case "connect-binary-h2": {
      const sessionManager = h2();
      return {
        transport: createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager }),
        close: () => sessionManager.abort(),
      };
    }
    case "grpc-h2": {
      const sessionManager = h2();
      return { transport: createGrpcTransport({ baseUrl, sessionManager }), close: () => sessionManager.abort() };
    }
    case "grpc-web-h1":
      return { transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }), close() {} };
    case "grpc-web-h2": {
      const sessionManager = h2();
      return {
        transport: createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager }),
        close: () => sessionManager.abort(),
      };
    }
    case "grpc-json-h2": {
      const sessionManager = h2();
      return {
        transport: createGrpcTransport({ baseUrl, sessionManager, useBinaryFormat: false }),
        close: () => sessionManager.abort(),
      };
    }
    case "grpc-web-json-h1":
      return { transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }), close() {} };
    case "connect-json-gzip-h1":
      return {
        transport: createConnectTransport({
          baseUrl,
          httpVersion: "1.1",
          useBinaryFormat: false,
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
        close() {},
      };
    case "grpc-br-h2": {
      const sessionManager = h2();
      return {
        transport: createGrpcTransport({ baseUrl, sessionManager, sendCompression: compressionBrotli, compressMinBytes: 0 }),
        close: () => sessionManager.abort(),
      };
    }
    case "grpc-web-gzip-h2": {
      const sessionManager = h2();
      return {
        transport: createGrpcWebTransport({
          baseUrl,
          httpVersion: "2",
          sessionManager,
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
        close: () => sessionManager.abort(),
      };
    }
    case "grpc-js-h2c":
      throw new Error("grpc-js is not a connect-es transport");
  }
}

export function createCaseCaller(protocol: CaseProtocol, baseUrl: string): CaseCaller {
  return protocol === "grpc-js-h2c" ? grpcJsCaseCaller(baseUrl) : connectEsCaseCaller(protocol, baseUrl);
}

/** connect-es client over one protocol; headers and trailers through its onHeader / onTrailer call options. */
function connectEsCaseCaller(protocol: CaseProtocol, baseUrl: string): CaseCaller {
  const { transport, close } = connectEsTransport(protocol, baseUrl);
  const chat = createClient(ChatService, transport);
  const prepare = (options: CaseCallOptions) => {
    const id = options.id ?? randomUUID();
    const controller = new AbortController();
    void options.cancelWhen?.then(() => controller.abort(options.cancelReason));
    const headers = {
      "x-request-id": caseRequestId,
      ...options.headers,
      ...(options.deadlineHeaderMs === undefined ? {} : timeoutHeader(protocol, options.deadlineHeaderMs)),
      "x-case-call": id,
    };
    return { id, controller, callOptions: { headers, timeoutMs: options.timeoutMs, signal: controller.signal } };
  };
  return {
    protocol,
    async unary(request, options = {}) {
      const { id, callOptions } = prepare(options);
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      try {
        const response = await chat.complete(request, {
          ...callOptions,
          onHeader: (h) => (header = h),
          onTrailer: (t) => (trailer = t),
        });
        return {
          id,
          code: "OK",
          message: undefined,
          details: undefined,
          headers: headerView(header),
          trailers: headerView(trailer),
          errorMetadata: undefined,
          events: unaryEvents(response),
        };
      } catch (err) {
        return errorView(id, ConnectError.from(err), headerView(header), []);
      }
    },
    async stream(request, options = {}) {
      const { id, controller, callOptions } = prepare(options);
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      const events: StreamCompleteResponse[] = [];
      try {
        const stream = chat.streamComplete(request, {
          ...callOptions,
          onHeader: (h) => (header = h),
          onTrailer: (t) => (trailer = t),
        });
        for await (const event of stream) {
          events.push(event);
          options.onEvent?.(events.length);
          if (options.cancelAfterEvents === events.length) controller.abort(options.cancelReason);
        }
      } catch (err) {
        return errorView(id, ConnectError.from(err), headerView(header), streamEvents(events));
      }
      return {
        id,
        code: "OK",
        message: undefined,
        details: undefined,
        headers: headerView(header),
        trailers: headerView(trailer),
        errorMetadata: undefined,
        events: streamEvents(events),
      };
    },
    close,
  };
}

/** @grpc/grpc-js (a real gRPC client); headers from its "metadata" event, trailers from its status. */
function grpcJsCaseCaller(baseUrl: string): CaseCaller {
  const client = createGrpcJsClient(baseUrl);
  const path = (method: { name: string }): string => `/${ChatService.typeName}/${method.name}`;
  const serialize =
    <D extends DescMessage>(schema: D) =>
    (message: MessageShape<D>): Buffer =>
      Buffer.from(toBinary(schema, message));
  const deserialize =
    <D extends DescMessage>(schema: D) =>
    (bytes: Buffer): MessageShape<D> =>
      fromBinary(schema, bytes);
  const prepare = (options: CaseCallOptions): { id: string; metadata: grpc.Metadata; callOptions: grpc.CallOptions } => {
    if (options.deadlineHeaderMs !== undefined) throw new Error("grpc-js sends no deadline it does not enforce itself");
    const id = options.id ?? randomUUID();
    const metadata = new grpc.Metadata();
    metadata.set("x-request-id", caseRequestId);
    for (const [key, value] of Object.entries(options.headers ?? {})) metadata.set(key, value);
    metadata.set("x-case-call", id);
    const callOptions: grpc.CallOptions = {};
    if (options.timeoutMs !== undefined) callOptions.deadline = Date.now() + options.timeoutMs;
    return { id, metadata, callOptions };
  };
  const finish = (
    id: string,
    status: grpc.StatusObject,
    headers: Record<string, string>,
    events: readonly unknown[],
  ): ClientView =>
    status.code === grpc.status.OK
      ? {
          id,
          code: "OK",
          message: undefined,
          details: undefined,
          headers,
          trailers: metadataView(status.metadata),
          errorMetadata: undefined,
          events,
        }
      : {
          ...errorView(id, toConnectError(status as Partial<grpc.ServiceError>), headers, events),
          errorMetadata: metadataView(status.metadata),
        };
  return {
    protocol: "grpc-js-h2c",
    unary(request, options = {}) {
      const { id, metadata, callOptions } = prepare(options);
      const method = ChatService.method.complete;
      return new Promise((resolve) => {
        let answer: CompleteResponse | undefined;
        let headers: Record<string, string> = {};
        // grpc-js calls back, then emits "status": the answer is known by then.
        const call = client.raw.makeUnaryRequest(
          path(method),
          serialize(method.input),
          deserialize(method.output),
          create(method.input, request),
          metadata,
          callOptions,
          (_err, response) => (answer = response),
        );
        void options.cancelWhen?.then(() => call.cancel());
        call.on("metadata", (m: grpc.Metadata) => (headers = metadataView(m)));
        call.on("status", (status: grpc.StatusObject) =>
          resolve(finish(id, status, headers, answer === undefined ? [] : unaryEvents(answer))),
        );
      });
    },
    stream(request, options = {}) {
      const { id, metadata, callOptions } = prepare(options);
      const method = ChatService.method.streamComplete;
      const call = client.raw.makeServerStreamRequest(
        path(method),
        serialize(method.input),
        deserialize(method.output),
        create(method.input, request),
        metadata,
        callOptions,
      );
      void options.cancelWhen?.then(() => call.cancel());
      return new Promise((resolve) => {
        const events: StreamCompleteResponse[] = [];
        let headers: Record<string, string> = {};
        let status: grpc.StatusObject | undefined;
        let ended = false;
        // grpc-js reports the status and the end of data separately: wait for both so no event is missed.
        const settle = (): void => {
          if (status !== undefined && ended) resolve(finish(id, status, headers, streamEvents(events)));
        };
        call.on("metadata", (m: grpc.Metadata) => (headers = metadataView(m)));
        call.on("data", (event: StreamCompleteResponse) => {
          events.push(event);
          options.onEvent?.(events.length);
          if (options.cancelAfterEvents === events.length) call.cancel();
        });
        call.on("error", () => {}); // reported again, with metadata, by "status"
        call.on("status", (s: grpc.StatusObject) => {
          status = s;
          settle();
        });
        const onEnd = (): void => {
          ended = true;
          settle();
        };
        call.on("end", onEnd);
        call.on("close", onEnd);
      });
    },
    close: () => client.close(),
  };
}
