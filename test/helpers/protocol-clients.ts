import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** The protocol × HTTP version combinations a caller can use against Sluice's one port. */
export type ProtocolName = "connect-json-h1" | "connect-binary-h2" | "grpc-web-h1" | "grpc-h2";

export interface ProtocolTransport {
  readonly protocol: ProtocolName;
  readonly transport: Transport;
  /** Closes the HTTP/2 session, if any (HTTP/1.1 transports use node's global agent). */
  close(): void;
}

/** Connect protocol, JSON, over HTTP/1.1 — what curl and browsers' fetch do. */
export function connectJsonTransport(baseUrl: string): ProtocolTransport {
  return {
    protocol: "connect-json-h1",
    transport: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    close() {},
  };
}

/** Connect protocol, binary protobuf, over h2c (prior knowledge). */
export function connectBinaryH2Transport(baseUrl: string): ProtocolTransport {
  const sessionManager = new Http2SessionManager(baseUrl);
  return {
    protocol: "connect-binary-h2",
    transport: createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager }),
    close: () => sessionManager.abort(),
  };
}

/** gRPC-Web (binary) over HTTP/1.1 — what browser gRPC clients send. */
export function grpcWebTransport(baseUrl: string): ProtocolTransport {
  return {
    protocol: "grpc-web-h1",
    transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    close() {},
  };
}

/** gRPC over h2c with connect-node's client. */
export function grpcH2Transport(baseUrl: string): ProtocolTransport {
  const sessionManager = new Http2SessionManager(baseUrl);
  return {
    protocol: "grpc-h2",
    transport: createGrpcTransport({ baseUrl, sessionManager }),
    close: () => sessionManager.abort(),
  };
}

/** One transport per protocol, for tests that check a behaviour over each. */
export function allProtocolTransports(baseUrl: string): ProtocolTransport[] {
  return [connectJsonTransport(baseUrl), connectBinaryH2Transport(baseUrl), grpcWebTransport(baseUrl), grpcH2Transport(baseUrl)];
}

export interface GrpcJsCallOptions {
  /** Sent as grpc-timeout. */
  readonly deadlineMs?: number;
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * A real @grpc/grpc-js client (the gRPC implementation most Node services use), its
 * messages encoded with the generated protobuf-es schemas — no proto-loader, no
 * hand-written types. Errors reject as grpc-js ServiceErrors; `toConnectError` reads their
 * status details.
 */
export interface GrpcJsClient {
  readonly raw: grpc.Client;
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options?: GrpcJsCallOptions,
  ): Promise<MessageShape<O>>;
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
    options?: GrpcJsCallOptions,
  ): grpc.ClientReadableStream<MessageShape<O>>;
  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    options?: GrpcJsCallOptions,
  ): grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>>;
  close(): void;
}

/** `http://127.0.0.1:PORT` → a grpc-js client on a plaintext (h2c) channel. */
export function createGrpcJsClient(
  baseUrl: string,
  channelOptions: grpc.ChannelOptions = {},
  /** Default: cleartext; e.g. `grpc.credentials.createSsl(ca, key, cert)` for TLS (and mTLS). */
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): GrpcJsClient {
  const { host } = new URL(baseUrl);
  const client = new grpc.Client(host, credentials, channelOptions);
  const path = (method: { parent: { typeName: string }; name: string }): string => `/${method.parent.typeName}/${method.name}`;
  const serializer =
    <D extends DescMessage>(schema: D) =>
    (message: MessageShape<D>): Buffer =>
      Buffer.from(toBinary(schema, message));
  const deserializer =
    <D extends DescMessage>(schema: D) =>
    (bytes: Buffer): MessageShape<D> =>
      fromBinary(schema, bytes);
  const callArgs = (options: GrpcJsCallOptions = {}): [grpc.Metadata, grpc.CallOptions] => {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
    const callOptions: grpc.CallOptions = {};
    if (options.deadlineMs !== undefined) callOptions.deadline = Date.now() + options.deadlineMs;
    return [metadata, callOptions];
  };

  return {
    raw: client,
    unary(method, request, options) {
      const [metadata, callOptions] = callArgs(options);
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path(method),
          serializer(method.input),
          deserializer(method.output),
          create(method.input, request),
          metadata,
          callOptions,
          (err, response) => (err ? reject(err) : resolve(response!)),
        );
      });
    },
    serverStream(method, request, options) {
      const [metadata, callOptions] = callArgs(options);
      return client.makeServerStreamRequest(
        path(method),
        serializer(method.input),
        deserializer(method.output),
        create(method.input, request),
        metadata,
        callOptions,
      );
    },
    bidiStream(method, options) {
      const [metadata, callOptions] = callArgs(options);
      return client.makeBidiStreamRequest(
        path(method),
        serializer(method.input),
        deserializer(method.output),
        metadata,
        callOptions,
      );
    },
    close: () => client.close(),
  };
}

/** A grpc-js ServiceError as a ConnectError, status details (BadRequest, ErrorInfo…) included. */
export function toConnectError(err: unknown): ConnectError {
  const serviceError = err as Partial<grpc.ServiceError>;
  if (serviceError.metadata === undefined || serviceError.code === undefined) return ConnectError.from(err);
  const trailer = new Headers();
  const details = serviceError.metadata.get("grpc-status-details-bin")[0];
  if (details !== undefined) trailer.set("grpc-status-details-bin", Buffer.from(details).toString("base64"));
  trailer.set("grpc-status", String(serviceError.code));
  trailer.set("grpc-message", encodeURIComponent(serviceError.details ?? ""));
  return findTrailerError(trailer) ?? new ConnectError("no error status", Code.Unknown);
}

/** One envelope of a gRPC-Web answer: a message, or (flag 0x80) the trailers. */
export interface GrpcWebFrame {
  readonly flags: number;
  readonly data: Buffer;
}

/** gRPC-Web's trailer flag. */
export const grpcWebTrailerFlag = 0x80;

/**
 * A grpc-web-text answer's bytes, decoded as the grpc-web JavaScript client decodes them:
 * base64 in groups of four characters, each on its own — so padding may close any group (a
 * server encodes each frame on its own). Throws on anything else.
 */
export function decodeGrpcWebText(text: string): Buffer {
  if (!/^(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)*$/.test(text)) {
    throw new Error(`not grpc-web-text (base64 in groups of 4): ${text.slice(0, 40)}`);
  }
  const groups: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) groups.push(Buffer.from(text.slice(i, i + 4), "base64"));
  return Buffer.concat(groups);
}

/** A gRPC-Web body split into its envelopes; throws on a truncated one. */
export function grpcWebFrames(body: Buffer): GrpcWebFrame[] {
  const frames: GrpcWebFrame[] = [];
  for (let at = 0; at < body.byteLength; ) {
    if (body.byteLength - at < 5) throw new Error("truncated gRPC-Web envelope prefix");
    const length = body.readUInt32BE(at + 1);
    if (body.byteLength - at - 5 < length) throw new Error("truncated gRPC-Web envelope");
    frames.push({ flags: body[at]!, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

/** A gRPC-Web trailer envelope's `name: value` lines as Headers. */
export function grpcWebTrailer(frame: GrpcWebFrame): Headers {
  const trailer = new Headers();
  for (const line of frame.data.toString("utf8").split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    trailer.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return trailer;
}

/**
 * A gRPC-Web answer read as a caller does: its messages (decoded with `schema`) and, from the
 * trailer envelope (the last), its status as a ConnectError (undefined for OK) and trailers.
 */
export function readGrpcWebAnswer<D extends DescMessage>(
  body: Buffer,
  schema: D,
): { messages: MessageShape<D>[]; error: ConnectError | undefined; trailer: Headers } {
  const frames = grpcWebFrames(body);
  const last = frames.at(-1);
  if (last === undefined || (last.flags & grpcWebTrailerFlag) !== grpcWebTrailerFlag) {
    throw new Error("a gRPC-Web answer ends with its trailer envelope");
  }
  const messages = frames.slice(0, -1).map((frame) => {
    if (frame.flags !== 0) throw new Error(`unexpected envelope flags ${frame.flags}`);
    return fromBinary(schema, frame.data);
  });
  const trailer = grpcWebTrailer(last);
  return { messages, error: findTrailerError(trailer), trailer };
}
