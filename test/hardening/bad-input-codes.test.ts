import * as http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { grpcStatusOf, streamEndError, unaryJsonError } from "../helpers/error-answers.js";
import {
  connectH2,
  envelope,
  grpcHeaders,
  h2Request,
  http1Request,
  ordinaryCall,
  parseEnvelopes,
  type RawAnswer,
} from "../helpers/raw-http.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";

/*
 * Issue 18, finding 6: bad client bytes were answered inconsistently — invalid UTF-8 in a
 * JSON string was silently replaced with U+FFFD, in a protobuf string it was INTERNAL /
 * HTTP 500; a corrupt `br` body was 500 where corrupt gzip was 400. Required: bad client
 * bytes are INVALID_ARGUMENT (HTTP 400 on Connect unary), always, on every path.
 */

let sluice: StartedSluice;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  sluice = await startSluice();
  session = await connectH2(sluice.url);
});
afterAll(async () => {
  session?.close();
  await sluice?.close();
});

/** 0xC3 0x28: a two-byte sequence's lead byte followed by a byte that is not a continuation. */
const invalidUtf8 = Buffer.from([0xc3, 0x28]);

/** A valid JSON request whose prompt text holds invalid UTF-8 bytes. */
const jsonWithInvalidUtf8 = Buffer.concat([
  Buffer.from('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"bad '),
  invalidUtf8,
  Buffer.from(' bytes"}]}]}'),
]);

/** A binary CompleteRequest whose prompt text (a proto3 string) holds invalid UTF-8. */
const binaryWithInvalidUtf8 = (() => {
  const marker = "\u0001\u0002";
  const bytes = Buffer.from(
    toBinary(
      CompleteRequestSchema,
      create(CompleteRequestSchema, {
        model: "demo",
        messages: [{ role: Role.USER, content: [{ part: { case: "text", value: marker } }] }],
      }),
    ),
  );
  const at = bytes.indexOf(Buffer.from(marker));
  invalidUtf8.copy(bytes, at);
  return bytes;
})();

const validJson = Buffer.from('{"model":"demo","messages":[{"role":"ROLE_USER","content":[{"text":"hi"}]}]}');

/** Corrupt compressed bodies: not compressed at all, and a valid stream cut short. */
const corrupt = {
  gzip: [Buffer.from("this was never gzip"), gzipSync(Buffer.concat([validJson, validJson])).subarray(0, 20)],
  br: [Buffer.from("this was never brotli"), brotliCompressSync(Buffer.concat([validJson, validJson])).subarray(0, 12)],
};

function connectCode(answer: RawAnswer): string | undefined {
  return answer.headers["content-type"]?.startsWith("application/connect+")
    ? streamEndError(answer.body)?.code
    : unaryJsonError(answer).code;
}

/** A gRPC-Web answer's status: a trailers-only header, or the trailer frame. */
function grpcWebStatus(answer: RawAnswer): number {
  const header = answer.headers["grpc-status"];
  if (header !== undefined) return Number(header);
  const trailer =
    parseEnvelopes(answer.body)
      .find((f) => (f.flags & 0x80) === 0x80)
      ?.data.toString() ?? "";
  return Number(/grpc-status: ?(\d+)/.exec(trailer)?.[1]);
}

async function grpcCall(headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<number | undefined> {
  const result = await h2Request(session, headers, body).answer;
  expect(result.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  return grpcStatusOf(result)?.code;
}

describe("invalid UTF-8 (finding 6)", () => {
  it("Connect unary JSON: 400 INVALID_ARGUMENT, not a silent U+FFFD", async () => {
    const [answer, ordinary] = await Promise.all([
      http1Request(sluice.port, {
        path: "/sluice.v1.ChatService/Complete",
        headers: { "content-type": "application/json" },
        body: jsonWithInvalidUtf8,
      }),
      ordinaryCall(sluice.port),
    ]);
    expect(ordinary.provider).toBe("demo");
    expect(answer.status).toBe(400);
    expect(connectCode(answer)).toBe("invalid_argument");
  });

  it("Connect unary JSON gzip'd (connect-node): 400 INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipSync(jsonWithInvalidUtf8),
    });
    expect(answer.status).toBe(400);
    expect(connectCode(answer)).toBe("invalid_argument");
  });

  it("Connect streaming JSON: INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/StreamComplete",
      headers: { "content-type": "application/connect+json" },
      body: envelope(jsonWithInvalidUtf8),
    });
    expect(connectCode(answer)).toBe("invalid_argument");
  });

  it("gRPC-Web JSON (connect-node): INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/grpc-web+json", "x-grpc-web": "1" },
      body: envelope(jsonWithInvalidUtf8),
    });
    expect(grpcWebStatus(answer)).toBe(Code.InvalidArgument);
  });

  it("gRPC JSON (application/grpc+json): INVALID_ARGUMENT", async () => {
    const code = await grpcCall(
      grpcHeaders("sluice.v1.ChatService/Complete", { "content-type": "application/grpc+json" }),
      envelope(jsonWithInvalidUtf8),
    );
    expect(code).toBe(Code.InvalidArgument);
  });

  it("gRPC binary, a protobuf string: INVALID_ARGUMENT, not INTERNAL", async () => {
    const [code, ordinary] = await Promise.all([
      grpcCall(grpcHeaders("sluice.v1.ChatService/Complete"), envelope(binaryWithInvalidUtf8)),
      ordinaryCall(sluice.port),
    ]);
    expect(ordinary.provider).toBe("demo");
    expect(code).toBe(Code.InvalidArgument);
  });

  it("gRPC binary streaming call: INVALID_ARGUMENT", async () => {
    const code = await grpcCall(grpcHeaders("sluice.v1.ChatService/StreamComplete"), envelope(binaryWithInvalidUtf8));
    expect(code).toBe(Code.InvalidArgument);
  });

  it("gRPC-Web binary: INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: envelope(binaryWithInvalidUtf8),
    });
    expect(grpcWebStatus(answer)).toBe(Code.InvalidArgument);
  });

  it("Connect unary binary (application/proto): 400 INVALID_ARGUMENT, not 500", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/proto" },
      body: binaryWithInvalidUtf8,
    });
    expect(answer.status).toBe(400);
    expect(connectCode(answer)).toBe("invalid_argument");
  });

  it("Connect streaming binary (application/connect+proto): INVALID_ARGUMENT", async () => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/StreamComplete",
      headers: { "content-type": "application/connect+proto" },
      body: envelope(binaryWithInvalidUtf8),
    });
    expect(connectCode(answer)).toBe("invalid_argument");
  });
});

describe("corrupt compressed bodies: br as gzip (finding 6)", () => {
  const encodings = ["gzip", "br"] as const;
  const cases = encodings.flatMap((encoding) =>
    corrupt[encoding].map((body, i) => ({ encoding, body, shape: i === 0 ? "garbage" : "truncated" })),
  );

  it.each(cases)("Connect unary JSON, content-encoding $encoding, $shape: 400 INVALID_ARGUMENT", async ({ encoding, body }) => {
    const [answer, ordinary] = await Promise.all([
      http1Request(sluice.port, {
        path: "/sluice.v1.ChatService/Complete",
        headers: { "content-type": "application/json", "content-encoding": encoding },
        body,
      }),
      ordinaryCall(sluice.port),
    ]);
    expect(ordinary.provider).toBe("demo");
    expect(answer.status).toBe(400);
    expect(connectCode(answer)).toBe("invalid_argument");
  });

  it.each(cases)(
    "Connect streaming JSON, connect-content-encoding $encoding, $shape: INVALID_ARGUMENT",
    async ({ encoding, body }) => {
      const answer = await http1Request(sluice.port, {
        path: "/sluice.v1.ChatService/StreamComplete",
        headers: { "content-type": "application/connect+json", "connect-content-encoding": encoding },
        body: envelope(body, 0b1),
      });
      expect(connectCode(answer)).toBe("invalid_argument");
    },
  );

  it.each(cases)("gRPC, grpc-encoding $encoding, $shape: INVALID_ARGUMENT", async ({ encoding, body }) => {
    const code = await grpcCall(
      grpcHeaders("sluice.v1.ChatService/Complete", { "grpc-encoding": encoding }),
      envelope(body, 0b1),
    );
    expect(code).toBe(Code.InvalidArgument);
  });

  it.each(cases)("gRPC-Web, grpc-encoding $encoding, $shape: INVALID_ARGUMENT", async ({ encoding, body }) => {
    const answer = await http1Request(sluice.port, {
      path: "/sluice.v1.ChatService/Complete",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "grpc-encoding": encoding },
      body: envelope(body, 0b1),
    });
    expect(grpcWebStatus(answer)).toBe(Code.InvalidArgument);
  });
});
