import * as http from "node:http";
import { create, toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { errorFromJson } from "@connectrpc/connect/protocol-connect";
import type { ServiceError, StatusObject } from "@grpc/grpc-js";
import {
  ChatService,
  CompleteRequestSchema,
  type CompleteRequest,
  type CompleteResponse,
  type StreamCompleteResponse,
} from "../../gen/sluice/v1/chat_service_pb.js";
import { ModelService, type ListModelsResponse } from "../../gen/sluice/v1/model_service_pb.js";
import type { FinishReason } from "../../gen/sluice/v1/chat_pb.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { connectJsonTransport, createGrpcJsClient, toConnectError } from "./protocol-clients.js";

/**
 * The two ways a caller most often reaches Sluice, behind one interface so a test can run
 * the same scenario over each (`describe.each(callerProtocols)`): Connect JSON over
 * HTTP/1.1 (connect-es client; what curl and fetch do) and gRPC over h2c with the real
 * @grpc/grpc-js client. Errors come back as ConnectErrors with their status details
 * decoded (grpc-js: from `grpc-status-details-bin`, see toConnectError).
 */
export const callerProtocols = ["connect-json-h1", "grpc-js-h2c"] as const;
export type CallerProtocol = (typeof callerProtocols)[number];

export type CompleteRequestInit = MessageInitShape<typeof CompleteRequestSchema>;
/** The plain-object form of a request (fields, not a built message), e.g. for `Partial<…>` extras. */
export type CompleteRequestFields = Exclude<CompleteRequestInit, CompleteRequest>;

export interface CallOptions {
  /** The caller's deadline (`connect-timeout-ms` / `grpc-timeout`). */
  readonly timeoutMs?: number;
  /** Request headers (HTTP headers / gRPC metadata). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface StreamOptions extends CallOptions {
  /** Called for every event as it arrives, before `cancelWhen` (e.g. to cut the upstream at that moment). */
  readonly onEvent?: (event: StreamCompleteResponse, seen: readonly StreamCompleteResponse[]) => void;
  /**
   * Cancels the call the way the protocol's client does (AbortController / grpc-js
   * `call.cancel()`) right after an event for which this returns true.
   */
  readonly cancelWhen?: (event: StreamCompleteResponse, seen: readonly StreamCompleteResponse[]) => boolean;
}

/** How a server stream ended: every event received, and the error status unless it ended OK. */
export interface StreamOutcome {
  readonly events: StreamCompleteResponse[];
  readonly error: ConnectError | undefined;
}

export interface ChatCaller {
  readonly protocol: CallerProtocol;
  complete(request: CompleteRequestInit, options?: CallOptions): Promise<CompleteResponse>;
  /** The error a Complete fails with; throws when it succeeds. */
  completeError(request: CompleteRequestInit, options?: CallOptions): Promise<ConnectError>;
  /** Runs a StreamComplete to its end; never throws for an error status (see StreamOutcome). */
  stream(request: CompleteRequestInit, options?: StreamOptions): Promise<StreamOutcome>;
  listModels(): Promise<ListModelsResponse>;
  close(): void;
}

export function createChatCaller(protocol: CallerProtocol, baseUrl: string): ChatCaller {
  return protocol === "connect-json-h1" ? connectJsonCaller(baseUrl) : grpcJsCaller(baseUrl);
}

function connectJsonCaller(baseUrl: string): ChatCaller {
  const transport = connectJsonTransport(baseUrl);
  const chat = createClient(ChatService, transport.transport);
  const models = createClient(ModelService, transport.transport);
  return {
    protocol: "connect-json-h1",
    complete: (request, options = {}) => chat.complete(request, { timeoutMs: options.timeoutMs, headers: options.headers }),
    async completeError(request, options = {}) {
      try {
        await chat.complete(request, { timeoutMs: options.timeoutMs });
      } catch (err) {
        return ConnectError.from(err);
      }
      throw new Error("expected Complete to fail");
    },
    async stream(request, options = {}) {
      const controller = new AbortController();
      const events: StreamCompleteResponse[] = [];
      try {
        for await (const event of chat.streamComplete(request, { timeoutMs: options.timeoutMs, signal: controller.signal })) {
          events.push(event);
          options.onEvent?.(event, events);
          if (options.cancelWhen?.(event, events)) controller.abort();
        }
      } catch (err) {
        return { events, error: ConnectError.from(err) };
      }
      return { events, error: undefined };
    },
    listModels: () => models.listModels({}),
    close: () => transport.close(),
  };
}

function grpcJsCaller(baseUrl: string): ChatCaller {
  const client = createGrpcJsClient(baseUrl);
  const deadline = (options: CallOptions) => ({
    ...(options.timeoutMs === undefined ? {} : { deadlineMs: options.timeoutMs }),
    ...(options.headers === undefined ? {} : { metadata: options.headers }),
  });
  return {
    protocol: "grpc-js-h2c",
    complete: (request, options = {}) => client.unary(ChatService.method.complete, request, deadline(options)),
    async completeError(request, options = {}) {
      try {
        await client.unary(ChatService.method.complete, request, deadline(options));
      } catch (err) {
        return toConnectError(err);
      }
      throw new Error("expected Complete to fail");
    },
    stream(request, options = {}) {
      const call = client.serverStream(ChatService.method.streamComplete, request, deadline(options));
      const events: StreamCompleteResponse[] = [];
      return new Promise<StreamOutcome>((resolve) => {
        let status: StatusObject | undefined;
        let ended = false;
        const settle = (): void => {
          // grpc-js pushes the end of data before it reports the status, and 'end' comes once
          // the buffered messages are delivered: wait for both so no event is missed.
          if (status === undefined || !ended) return;
          const error = status.code === 0 ? undefined : toConnectError(status as Partial<ServiceError>);
          resolve({ events, error });
        };
        call.on("data", (event: StreamCompleteResponse) => {
          events.push(event);
          options.onEvent?.(event, events);
          if (options.cancelWhen?.(event, events)) call.cancel();
        });
        // The error is reported again, with its metadata, by 'status'.
        call.on("error", () => {});
        call.on("status", (s: StatusObject) => {
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
    listModels: () => client.unary(ModelService.method.listModels, {}),
    close: () => client.close(),
  };
}

export interface RawConnectReply {
  readonly status: number;
  readonly bodyText: string;
  /** The error the body describes (Connect's own JSON error decoder), when the status is not 200. */
  readonly error: ConnectError | undefined;
}

/**
 * `POST /sluice.v1.ChatService/Complete` with a JSON body on a fresh HTTP/1.1 connection,
 * as curl sends it: for what the connect client hides, the HTTP status and the raw body.
 */
export function postCompleteJson(baseUrl: string, request: CompleteRequestInit): Promise<RawConnectReply> {
  const { hostname, port } = new URL(baseUrl);
  const body = toJsonString(CompleteRequestSchema, create(CompleteRequestSchema, request));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: hostname,
        port: Number(port),
        method: "POST",
        path: "/sluice.v1.ChatService/Complete",
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const bodyText = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          let error: ConnectError | undefined;
          if (status !== 200) {
            const fallback = new ConnectError(`HTTP ${status}`, Code.Unknown);
            try {
              error = errorFromJson(JSON.parse(bodyText), undefined, fallback);
            } catch {
              error = fallback;
            }
          }
          resolve({ status, bodyText, error });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface CompactUsage {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
  reasoning: number;
}

/** One stream event as a table row a test can spell out; every field is kept. */
export type CompactEvent =
  | ["start", id: string, model: string, provider: string]
  | ["text", string]
  | ["reasoning", string]
  | ["tool", index: number, id: string, name: string, args: string]
  | ["args", index: number, args: string]
  | ["done", FinishReason, CompactUsage | undefined]
  | ["unexpected", string | undefined];

/** Events in the compact form (a call's first fragment names it: "tool"; later ones only carry "args"). */
export function compactEvents(events: readonly StreamCompleteResponse[]): CompactEvent[] {
  return events.map(({ event }): CompactEvent => {
    switch (event.case) {
      case "start":
        return ["start", event.value.id, event.value.model, event.value.provider];
      case "delta":
        return ["text", event.value.text];
      case "reasoningDelta":
        return ["reasoning", event.value.text];
      case "toolCallDelta": {
        const { index, id, name, arguments: args } = event.value;
        return id !== "" || name !== "" ? ["tool", index, id, name, args] : ["args", index, args];
      }
      case "done": {
        const u = event.value.usage;
        return [
          "done",
          event.value.finishReason,
          u === undefined
            ? undefined
            : {
                input: u.inputTokens,
                output: u.outputTokens,
                cachedInput: u.cachedInputTokens,
                cacheWrite: u.cacheWriteInputTokens,
                reasoning: u.reasoningTokens,
              },
        ];
      }
      default:
        return ["unexpected", event.case];
    }
  });
}

/** What an error tells a caller, details decoded, in a form a test can compare whole. */
export interface ErrorFacts {
  readonly code: Code;
  readonly errorInfo: Array<{ reason: string; domain: string; metadata: Record<string, string> }>;
  /** google.rpc.RetryInfo retry_delay, in milliseconds. */
  readonly retryDelayMs: number[];
  readonly fieldViolations: Array<{ field: string; description: string; reason: string }>;
}

/**
 * An error's caller-visible facts. The `request_id` every ErrorInfo carries differs per
 * call, so it is left out unless `keepRequestId` (tests of request ids keep it).
 */
export function errorFacts(error: ConnectError, options: { keepRequestId?: boolean } = {}): ErrorFacts {
  return {
    code: error.code,
    errorInfo: error.findDetails(ErrorInfoSchema).map(({ reason, domain, metadata }) => {
      const { request_id: requestId, ...rest } = metadata;
      return { reason, domain, metadata: options.keepRequestId && requestId !== undefined ? { ...metadata } : rest };
    }),
    retryDelayMs: error
      .findDetails(RetryInfoSchema)
      .map((info) => Number(info.retryDelay?.seconds ?? 0n) * 1000 + Math.round((info.retryDelay?.nanos ?? 0) / 1e6)),
    fieldViolations: error
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map(({ field, description, reason }) => ({ field, description, reason }))),
  };
}

/** A CompleteResponse's caller-visible fields as plain data, for one whole-value comparison. */
export function responseSummary(response: CompleteResponse) {
  const message = response.message;
  return {
    id: response.id,
    model: response.model,
    provider: response.provider,
    role: message?.role,
    content: message?.content.map((p) => (p.part.case === "text" ? p.part.value : `(${p.part.case ?? "empty"})`)),
    toolCalls: message?.toolCalls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
    reasoning: message?.reasoning,
    finishReason: response.finishReason,
    usage:
      response.usage === undefined
        ? undefined
        : {
            input: response.usage.inputTokens,
            output: response.usage.outputTokens,
            cachedInput: response.usage.cachedInputTokens,
            cacheWrite: response.usage.cacheWriteInputTokens,
            reasoning: response.usage.reasoningTokens,
          },
  };
}

/**
 * `promise`, or a rejection naming `what` if it has not settled within `ms`: a bound on
 * how long something may take (e.g. an abort reaching the upstream), not a sleep.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
