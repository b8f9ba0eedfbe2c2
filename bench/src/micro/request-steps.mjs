// Where a unary request's CPU goes inside Sluice, step by step, on one core: the work a
// gateway must do that a byte pass-through does not (decode and validate the caller's
// message, translate it to the provider's JSON, parse and translate the answer, encode
// the reply). Compare the total with "Sluice CPU µs/req − pass-through CPU µs/req" from
// the throughput scenario: what is left is the server, undici and the resilience logic.
//
// Usage (from bench/, after `npm run build` in the repo root): node src/micro/request-steps.mjs
// Runs each step in a tight loop (warm-up first, so V8 has optimised it), median of 5 rounds.
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { MAIN_DIR } from "../targets/servers.mjs";
import { sluiceRequestJson } from "../targets/workloads.mjs";

const dist = (path) => import(pathToFileURL(join(MAIN_DIR, "dist", path)).href);
const { CompleteRequestSchema, CompleteResponseSchema } = await dist("gen/sluice/v1/chat_service_pb.js");
const { buildChatRequest } = await dist("src/providers/openai/request.js");
const { translateCompletion } = await dist("src/providers/openai/response.js");
const { validateCompleteRequest } = await dist("src/api/validate-request.js");
// The server installs this at start (Buffer-based UTF-8 for protobuf strings); measure what it runs.
const { useNodeTextEncoding } = await dist("src/server/protobuf-text-encoding.js");
useNodeTextEncoding();

const workload = { alias: "bench-unary", model: "fake", stream: false };
const requestJson = JSON.stringify(sluiceRequestJson(workload));
const jsonOptions = { ignoreUnknownFields: false };
const request = fromJsonString(CompleteRequestSchema, requestJson, jsonOptions);
const requestBinary = toBinary(CompleteRequestSchema, request);
// The fake upstream's answer, byte for byte (bench/src/servers/fake-upstream.mjs).
const upstreamText = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_700_000_000,
  model: "fake",
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "Hello! How can I help you today?", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 },
});
const failures = { provider: "fake", malformed: (what) => new Error(what) };
const call = { model: "fake" };
const response = translateCompletion(JSON.parse(upstreamText), call, failures);

let sink = 0;
const steps = [
  ["Connect JSON: decode the request (fromJsonString)", () => fromJsonString(CompleteRequestSchema, requestJson, jsonOptions)],
  ["gRPC: decode the request (fromBinary)", () => fromBinary(CompleteRequestSchema, requestBinary)],
  ["validate the request", () => validateCompleteRequest(request)],
  [
    "translate to OpenAI JSON + JSON.stringify",
    () => JSON.stringify(buildChatRequest(request, { model: "fake", stream: false, provider: "fake" })),
  ],
  ["parse the upstream answer (JSON.parse)", () => JSON.parse(upstreamText)],
  ["translate the answer to CompleteResponse", () => translateCompletion(JSON.parse(upstreamText), call, failures)],
  ["Connect JSON: encode the reply (toJsonString + utf-8)", () => Buffer.from(toJsonString(CompleteResponseSchema, response))],
  ["gRPC: encode the reply (toBinary)", () => toBinary(CompleteResponseSchema, response)],
];

function perCallUs(fn, iterations) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink ^= fn() === undefined ? 0 : 1;
  return Number(process.hrtime.bigint() - start) / 1e3 / iterations;
}

const rows = [];
for (const [name, fn] of steps) {
  perCallUs(fn, 20_000);
  const rounds = Array.from({ length: 5 }, () => perCallUs(fn, 50_000)).sort((a, b) => a - b);
  rows.push([name, rounds[2]]);
}
// "translate the answer" includes a JSON.parse; report it without.
const parse = rows.find(([n]) => n.startsWith("parse the upstream"))[1];
const translate = rows.find(([n]) => n.startsWith("translate the answer"));
translate[1] = Math.max(0, translate[1] - parse);

const get = (prefix) => rows.find(([n]) => n.startsWith(prefix))[1];
const shared = get("validate") + get("translate to OpenAI") + get("parse the upstream") + get("translate the answer");
const connect = get("Connect JSON: decode") + shared + get("Connect JSON: encode");
const grpc = get("gRPC: decode") + shared + get("gRPC: encode");
console.log(`node ${process.version}, ${rows.length} steps, median of 5 rounds × 50,000 calls (sink ${sink & 1})\n`);
console.log("| step | µs per request |\n| --- | --- |");
for (const [name, us] of rows) console.log(`| ${name} | ${us.toFixed(2)} |`);
console.log(`| **Connect JSON total** | **${connect.toFixed(1)}** |`);
console.log(`| **gRPC total** | **${grpc.toFixed(1)}** |`);
