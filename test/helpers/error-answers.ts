import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { parseEnvelopes, type H2Answer, type RawAnswer } from "./raw-http.js";

/* Reading the error a caller got, as each protocol puts it on the wire, to assert its code and size. */

/** A Connect error as JSON: `{ code, message, details: [{ type, value (base64) }] }`. */
export interface ConnectJsonError {
  readonly code: string;
  readonly message?: string;
  readonly details?: ReadonlyArray<{ readonly type: string; readonly value: string }>;
}

/** The error of a Connect unary answer (its body is the error). */
export function unaryJsonError(answer: RawAnswer): ConnectJsonError {
  return JSON.parse(answer.body.toString()) as ConnectJsonError;
}

/** The error in a Connect streaming answer's end-of-stream envelope (JSON), if any. */
export function streamEndError(body: Buffer): ConnectJsonError | undefined {
  const end = parseEnvelopes(body).find((frame) => (frame.flags & 0b10) === 0b10);
  if (end === undefined) throw new Error(`no end-of-stream envelope in ${body.length} bytes`);
  return (JSON.parse(end.data.toString()) as { error?: ConnectJsonError }).error;
}

/** The field violations of a google.rpc.BadRequest among a Connect JSON error's details. */
export function jsonBadRequestViolations(error: ConnectJsonError): number {
  const detail = error.details?.find((d) => d.type === "google.rpc.BadRequest");
  return detail === undefined ? 0 : fromBinary(BadRequestSchema, Buffer.from(detail.value, "base64")).fieldViolations.length;
}

/** A gRPC status as it arrived: trailers, or the headers of a trailers-only answer. */
export interface GrpcStatus {
  readonly code: number;
  readonly message: string;
  /** grpc-status + grpc-message + grpc-status-details-bin, names and values, in bytes as sent. */
  readonly statusBytes: number;
}

export function grpcStatusOf(answer: H2Answer): GrpcStatus | undefined {
  const source = answer.trailers["grpc-status"] !== undefined ? answer.trailers : answer.headers;
  const status = source["grpc-status"];
  if (status === undefined) return undefined;
  let statusBytes = 0;
  for (const name of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
    const value = source[name];
    if (value !== undefined) statusBytes += name.length + String(value).length;
  }
  return { code: Number(status), message: decodeURIComponent(String(source["grpc-message"] ?? "")), statusBytes };
}

/** The size of a header block as a peer accounts it (RFC 9113 §6.5.2: name + value + 32 per field). */
export function headerListSize(headers: http2.IncomingHttpHeaders): number {
  let size = 0;
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value]) size += name.length + String(one).length + 32;
  }
  return size;
}
