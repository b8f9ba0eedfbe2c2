import * as http2 from "node:http2";
import { once } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../../gen/sluice/v1/chat_service_pb.js";
import { connectH2, envelope, grpcHeaders, h2Request, type H2Answer } from "../../helpers/raw-http.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";

/*
 * `server.maxBufferedRequestBytes`: request bodies being received count against one budget
 * for the process, so bodies that trickle in and never finish cannot add up to
 * calls × maxRequestBytes. The body that would cross the budget is refused with
 * RESOURCE_EXHAUSTED; the others go on; the bytes come back when a body ends.
 *
 * Sizes stay under HTTP/2's initial 64 KiB windows, so every DATA frame leaves in the order
 * it was written and the server reads the held bodies before the one that crosses.
 */

const maxRequestBytes = 16 * 1024;
const maxBufferedRequestBytes = 24 * 1024;
const complete = "sluice.v1.ChatService/Complete";
let sluice: StartedSluice;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  sluice = await startSluice(undefined, { server: { maxRequestBytes, maxBufferedRequestBytes } });
  session = await connectH2(sluice.url);
});

afterAll(async () => {
  session.close();
  await sluice.close();
});

/** A gRPC call whose 16 KB message arrives only `sent` bytes far, then holds. */
function heldBody(sent: number): http2.ClientHttp2Stream {
  const stream = session.request(grpcHeaders(complete));
  stream.on("error", () => {});
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(maxRequestBytes, 1);
  stream.write(Buffer.concat([prefix, Buffer.alloc(sent - 5)]));
  return stream;
}

const hello = envelope(
  toBinary(
    CompleteRequestSchema,
    create(CompleteRequestSchema, {
      model: "demo",
      messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
    }),
  ),
);

function status(answer: H2Answer): string | undefined {
  return (answer.trailers["grpc-status"] ?? answer.headers["grpc-status"]) as string | undefined;
}

it("refuses the body that would cross the budget, serves the others, and frees the bytes when a body ends", async () => {
  const first = heldBody(12 * 1024);
  const second = heldBody(10 * 1024);

  // 22 KB of 24 KB are held: 8 KB more crosses the budget.
  const refused = await h2Request(session, grpcHeaders(complete), envelope(Buffer.alloc(8 * 1024))).answer;
  expect(status(refused)).toBe("8"); // RESOURCE_EXHAUSTED
  const message = decodeURIComponent(String(refused.trailers["grpc-message"] ?? refused.headers["grpc-message"]));
  expect(message).toContain("server.maxBufferedRequestBytes (24576 bytes)");

  // A small call still fits and is served meanwhile.
  expect(status(await h2Request(session, grpcHeaders(complete), hello).answer)).toBe("0");

  // The held callers give up: their bytes come back, and 8 KB is accepted again (the demo
  // answers or refuses the zero-filled message; either way the budget let it through).
  first.close(http2.constants.NGHTTP2_CANCEL);
  second.close(http2.constants.NGHTTP2_CANCEL);
  await Promise.all([once(first, "close"), once(second, "close")]);
  const after = await h2Request(session, grpcHeaders(complete), envelope(Buffer.alloc(8 * 1024))).answer;
  expect(status(after)).not.toBe("8");
});
