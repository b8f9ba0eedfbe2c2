import * as http from "node:http";
import * as http2 from "node:http2";
import { once } from "node:events";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

/* Requests shaped byte by byte, as an attacker (or an odd client) sends them: no client library in between. */

export interface RawAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body's size on the wire (compressed, when it was). */
  readonly wireBytes: number;
}

function decoded(encoding: string | undefined, body: Buffer): Buffer {
  if (encoding === "gzip") return gunzipSync(body);
  if (encoding === "br") return brotliDecompressSync(body);
  return body;
}

/**
 * One HTTP/1.1 request on a fresh connection (agent: false), the whole answer read. A body
 * sent with `content-encoding` gzip or br is given decompressed (its size is what a caller
 * gets to hold), with `wireBytes` the size as sent.
 */
export function http1Request(
  port: number,
  request: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: request.method ?? "POST", path: request.path, agent: false, headers: request.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          try {
            resolve({
              status: res.statusCode!,
              headers: res.headers,
              body: decoded(res.headers["content-encoding"], body),
              wireBytes: body.length,
            });
          } catch (err) {
            reject(err);
          }
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(request.body);
  });
}

/** The README's curl call: Connect JSON unary over HTTP/1.1 on its own connection. */
export const curlRequest = {
  path: "/sluice.v1.ChatService/Complete",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ model: "demo", messages: [{ role: "ROLE_USER", content: [{ text: "still there?" }] }] }),
};

/** Resolves with the demo's answer to an ordinary call from another caller, or rejects. */
export async function ordinaryCall(port: number): Promise<{ provider: string }> {
  const answer = await http1Request(port, curlRequest);
  if (answer.status !== 200) throw new Error(`ordinary call: HTTP ${answer.status} ${answer.body.toString().slice(0, 200)}`);
  return JSON.parse(answer.body.toString()) as { provider: string };
}

export interface H2Answer {
  /** Undefined when the stream closed before response headers. */
  readonly status: number | undefined;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The stream's RST_STREAM code (0: closed normally). */
  readonly rstCode: number;
}

/**
 * An h2c session (prior knowledge) with `settings` sent in its first SETTINGS frame,
 * resolved once the server's SETTINGS arrived. Session errors (a GOAWAY with an error, a
 * reset socket) are left for the test to see in its streams' outcomes.
 */
export async function connectH2(url: string, settings: http2.Settings = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url, { settings });
  session.on("error", () => {});
  await once(session, "remoteSettings");
  return session;
}

/**
 * A stream on `session`: `body` sent and ended, or `"open"` to send headers only and keep
 * the request body open (no END_STREAM). `answer` resolves when the stream closes, however.
 */
export function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer | "open" | undefined,
): { readonly stream: http2.ClientHttp2Stream; readonly answer: Promise<H2Answer> } {
  const stream = session.request(headers, { endStream: body === undefined });
  stream.on("error", () => {});
  if (body instanceof Buffer) stream.end(body);
  const answer = new Promise<H2Answer>((resolve) => {
    let status: number | undefined;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      responseHeaders = h;
      status = Number(h[":status"]);
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("close", () =>
      resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 }),
    );
  });
  return { stream, answer };
}

/** A gRPC / Connect streaming envelope: flags byte, big-endian length, message. */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

/** The envelopes of a body, in order (a truncated last one is left out). */
export function parseEnvelopes(body: Buffer): Array<{ flags: number; data: Buffer }> {
  const out: Array<{ flags: number; data: Buffer }> = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    out.push({ flags: body.readUInt8(at), data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** Headers of a gRPC call to a Sluice RPC, as a stock client sends them. */
export function grpcHeaders(procedure: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  return {
    ":method": "POST",
    ":path": `/${procedure}`,
    "content-type": "application/grpc",
    te: "trailers",
    ...extra,
  };
}
