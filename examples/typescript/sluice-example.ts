// A Sluice client in TypeScript (connect-es on Node): a unary Complete, a StreamComplete
// printing deltas as they arrive, google.rpc.ErrorInfo and RetryInfo read from errors, a
// deadline, and a cancelled stream. It calls the gateway at SLUICE_URL (default
// http://127.0.0.1:8080) with the API key in SLUICE_API_KEY (if set). See README.md.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { FinishReason, Role } from "./gen/sluice/v1/chat_pb.js";
import { ChatService, type CompleteRequest, CompleteRequestSchema } from "./gen/sluice/v1/chat_service_pb.js";

const baseUrl = process.env["SLUICE_URL"] || "http://127.0.0.1:8080";
const apiKey = process.env["SLUICE_API_KEY"];

/** Sends `authorization: Bearer KEY` with every call. */
const bearer: Interceptor = (next) => (req) => {
  if (apiKey) req.header.set("authorization", `Bearer ${apiKey}`);
  return next(req);
};

// The Connect protocol over HTTP/2 (createGrpcTransport would speak gRPC instead).
const transport = createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [bearer] });
const chat = createClient(ChatService, transport);

const request = (model: string, text: string): CompleteRequest =>
  create(CompleteRequestSchema, { model, messages: [{ role: Role.USER, content: [{ part: { case: "text", value: text } }] }] });

/** A Connect code as the protocol spells it: Code.NotFound is NOT_FOUND. */
const codeName = (code: Code): string =>
  code === Code.Canceled ? "CANCELLED" : Code[code].replace(/(?<!^)([A-Z])/g, "_$1").toUpperCase();

// Unary. Every call gets a deadline (timeoutMs).
const response = await chat.complete(request("demo", "Hello from TypeScript"), { timeoutMs: 10_000 });
console.log(`complete: ${response.message?.content.map((part) => (part.part.case === "text" ? part.part.value : "")).join("")}`);

// Server streaming: print each delta as it arrives.
process.stdout.write("stream: ");
for await (const event of chat.streamComplete(request("demo", "Hello from TypeScript"), { timeoutMs: 10_000 })) {
  if (event.event.case === "delta") process.stdout.write(event.event.value.text);
  else if (event.event.case === "done")
    console.log(`\nstream done: FINISH_REASON_${FinishReason[event.event.value.finishReason]}`);
}

// An unknown model: NOT_FOUND, with google.rpc.ErrorInfo among the error's details.
try {
  await chat.complete(request("no-such-model", "Hello from TypeScript"), { timeoutMs: 10_000 });
} catch (err) {
  const error = ConnectError.from(err);
  const [info] = error.findDetails(ErrorInfoSchema);
  console.log(`not found: ${codeName(error.code)} ${info?.reason} (domain ${info?.domain})`);
}

// Model "limited" allows one request a minute: a second call is RESOURCE_EXHAUSTED, and
// RetryInfo says when to try again.
for (let i = 0; i < 2; i++) {
  try {
    await chat.complete(request("limited", "Hello from TypeScript"), { timeoutMs: 10_000 });
  } catch (err) {
    const error = ConnectError.from(err);
    if (error.code !== Code.ResourceExhausted) throw error;
    const [info] = error.findDetails(ErrorInfoSchema);
    const [retry] = error.findDetails(RetryInfoSchema);
    const delayMs = Number(retry?.retryDelay?.seconds ?? 0n) * 1000 + (retry?.retryDelay?.nanos ?? 0) / 1e6;
    console.log(`rate limited: ${codeName(error.code)} ${info?.reason}, retry in ${Math.ceil(delayMs / 1000)} s`);
    break;
  }
}

// A deadline shorter than the answer takes to stream: DEADLINE_EXCEEDED.
try {
  for await (const _ of chat.streamComplete(request("demo", "Hello from TypeScript"), { timeoutMs: 200 })) {
    // read until the deadline
  }
} catch (err) {
  console.log(`deadline: ${codeName(ConnectError.from(err).code)} after 200 ms`);
}

// Cancel: abort after the first delta; the gateway stops the call.
const controller = new AbortController();
try {
  for await (const event of chat.streamComplete(request("demo", "Hello from TypeScript"), { signal: controller.signal })) {
    if (event.event.case === "delta") controller.abort();
  }
} catch (err) {
  console.log(`cancel: ${codeName(ConnectError.from(err).code)} after the first delta`);
}
