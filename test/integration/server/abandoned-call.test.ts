import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { request } from "undici";
import { ChatService } from "../../../gen/sluice/v1/chat_service_pb.js";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { connectJsonTransport, grpcH2Transport, type ProtocolTransport } from "../../helpers/protocol-clients.js";
import { startSluice, type StartedSluice } from "../../helpers/start-sluice.js";

/**
 * A lane that cannot write the answer it built (here: an error whose detail protobuf cannot
 * encode, as only a bug produces) resets that one call; the process lives on and serves the
 * next caller. Before, the rejection went unhandled, which ends a Node process.
 */
const unencodable: Interceptor = (next) => async (req) => {
  if (req.header.get("x-break") !== "1") return next(req);
  throw new ConnectError("broken detail", Code.Internal, undefined, [
    { desc: RetryInfoSchema, value: { retryDelay: { seconds: "x" as unknown as bigint } } },
  ]);
};

const request_ = { model: "demo", messages: [{ role: 2, content: [{ part: { case: "text" as const, value: "Hi" } }] }] };

let sluice: StartedSluice;
let transports: ProtocolTransport[];

beforeAll(async () => {
  sluice = await startSluice(
    {
      providers: { demo: { type: "demo", wordDelayMs: 0 } },
      models: { demo: { deployments: [{ provider: "demo", model: "sluice-demo-1" }] } },
    },
    { interceptors: (chain) => [unencodable, ...chain] },
  );
  transports = [connectJsonTransport(sluice.url), grpcH2Transport(sluice.url)];
});

afterAll(async () => {
  for (const transport of transports) transport.close();
  await sluice.close();
});

describe("a call the lane cannot answer", () => {
  it.each([0, 1])("is reset, and the server keeps serving (transport %i)", async (index) => {
    const client = createClient(ChatService, transports[index]!.transport);
    const broken = await client.complete(request_, { headers: { "x-break": "1" } }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(broken).toBeDefined();
    // Reset, not answered: the broken error never reached the wire (HTTP/1.1: the socket
    // closed; HTTP/2: the stream reset before any status).
    expect(broken!.rawMessage).not.toContain("broken detail");
    const streamed: string[] = [];
    const stream = client.streamComplete(request_, { headers: { "x-break": "1" } });
    await expect(
      (async () => {
        for await (const event of stream) streamed.push(event.event.case ?? "");
      })(),
    ).rejects.toBeInstanceOf(Error);
    const answer = await client.complete(request_);
    expect(answer.provider).toBe("demo");
  });

  it("answers plain HTTP callers afterwards too", async () => {
    const res = await request(`${sluice.url}/sluice.v1.ModelService/ListModels`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain('"demo"');
  });
});
