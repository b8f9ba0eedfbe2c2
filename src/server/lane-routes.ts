import {
  create,
  isMessage,
  type DescMessage,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type JsonReadOptions,
  type JsonWriteOptions,
  type Message,
} from "@bufbuild/protobuf";
import type { Interceptor, StreamRequest, StreamResponse, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { createBinaryWriter, type BinaryMessageWriter } from "../wire/compiled-binary-writer.js";
import { createMethodJsonCodecs, type MessageJsonCodec } from "../wire/compiled-json-codec.js";
import { contextOf, interceptorRequest, type FastCall } from "./fast-call.js";
import { rpcPath, type RouteTable } from "./route-table.js";

interface LaneRouteBase {
  readonly input: DescMessage;
  readonly output: DescMessage;
  readonly inputJson: MessageJsonCodec;
  readonly outputJson: MessageJsonCodec;
  readonly outputBinary: BinaryMessageWriter;
}

export interface UnaryLaneRoute extends LaneRouteBase {
  readonly kind: "unary";
  readonly method: DescMethodUnary;
  /** The implementation behind the table's interceptor chain. */
  invoke(call: FastCall, input: Message): Promise<UnaryResponse>;
}

export interface StreamLaneRoute extends LaneRouteBase {
  readonly kind: "server_streaming";
  readonly method: DescMethodServerStreaming;
  /** The implementation behind the table's interceptor chain; interceptors see a StreamRequest of one message. */
  invoke(call: FastCall, input: Message): Promise<StreamResponse>;
}

export type LaneRoute = UnaryLaneRoute | StreamLaneRoute;

/** Every RPC a fast lane may serve, by HTTP path; built once per server and read by every lane. */
export type LaneRoutes = ReadonlyMap<string, LaneRoute>;

/**
 * Prepares the route table for the fast lanes: per RPC its codecs and its implementation
 * wrapped in the table's interceptor chain, built once. Only unary and server-streaming
 * RPCs have a lane; anything else is left to connect-node.
 */
export function prepareLaneRoutes(table: RouteTable, jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>): LaneRoutes {
  const routes = new Map<string, LaneRoute>();
  for (const spec of table.rpcs) {
    const { method } = spec;
    const base: LaneRouteBase = {
      input: method.input,
      output: method.output,
      ...createMethodJsonCodecs(method, jsonOptions),
      outputBinary: createBinaryWriter(method.output),
    };
    if (spec.kind === "unary") {
      const impl = spec.impl;
      const next = async (req: UnaryRequest): Promise<UnaryResponse> => {
        const context = contextOf(req);
        const answer = await impl(req.message, context);
        return {
          stream: false,
          service: method.parent,
          method: spec.method,
          header: context.responseHeader,
          trailer: context.responseTrailer,
          message: asMessage(method.output, answer),
        };
      };
      const chained = chainInterceptors(next, table.interceptors);
      routes.set(rpcPath(spec), {
        ...base,
        kind: "unary",
        method: spec.method,
        invoke: (call, input) => chained(interceptorRequest(spec.method, call, false, input)),
      });
    } else if (spec.kind === "server_streaming") {
      const impl = spec.impl;
      const next = async (req: StreamRequest): Promise<StreamResponse> => {
        const context = contextOf(req);
        let input: Message | undefined;
        for await (const message of req.message) input = message;
        return {
          stream: true,
          service: method.parent,
          method: spec.method,
          header: context.responseHeader,
          trailer: context.responseTrailer,
          // Sluice's implementations yield complete messages (the generated types are its model).
          message: impl(input!, context) as AsyncIterable<Message>,
        };
      };
      const chained = chainInterceptors(next, table.interceptors);
      routes.set(rpcPath(spec), {
        ...base,
        kind: "server_streaming",
        method: spec.method,
        invoke: (call, input) => chained(interceptorRequest(spec.method, call, true, single(input))),
      });
    }
  }
  return routes;
}

/** Wraps `next` in a chain of interceptors (first = outermost), as connect does. */
function chainInterceptors<T>(next: T, interceptors: readonly Interceptor[]): T {
  let chained = next;
  for (let i = interceptors.length - 1; i >= 0; i--) chained = interceptors[i]!(chained as never) as T;
  return chained;
}

/** An implementation may answer with an init object, as connect allows; the lanes write complete messages. */
function asMessage(schema: DescMessage, answer: unknown): Message {
  return isMessage(answer, schema) ? answer : create(schema, answer as never);
}

async function* single<T>(value: T): AsyncGenerator<T> {
  yield value;
}
