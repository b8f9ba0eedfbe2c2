// What the response cache costs per call (issue 16): CPU µs of the request key (canonical string + SHA-256) on the
// realistic request (a system prompt and three turns, ~2 KB; goal ≤ 5 µs), against protobuf-es toBinary + SHA-256,
// and the in-process hit path (plan + store lookup + answer copy with its route), without sockets.
//
// Usage (from the repo root): npx tsx bench/micro/cache-steps.ts [--calls 100000]
import { parseArgs } from "node:util";
import { hash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema, CompleteResponseSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { requestKey } from "../../src/cache/request-key.js";
import { createMemoryAnswerCache } from "../../src/state/answer-cache.js";

const { values: args } = parseArgs({ options: { calls: { type: "string", default: "100000" } } });
const calls = Number(args.calls);
const system =
  "You are the support assistant of Acme Projects, a project-management tool. Answer in the customer's language, " +
  "briefly and precisely. When you are not sure, say so and offer to open a ticket. ".repeat(14);
const turns = [
  "Hi! We are a team of 12 on the Team plan. Since yesterday two colleagues cannot see the Q3 roadmap project, although they were invited last week. What should we check?",
  "Sorry about that! The usual causes are: the invitation was accepted with another e-mail address; the project is private and they were added to the workspace but not to the project.",
  "They are in the workspace members list but not in the project's Members tab. Can we make the roadmap visible to everyone in the workspace by default?",
];
const request = create(CompleteRequestSchema, {
  model: "fast",
  temperature: 0,
  maxOutputTokens: 512,
  messages: [
    { role: Role.SYSTEM, content: [{ part: { case: "text", value: system } }] },
    ...turns.map((text, i) => ({ role: i % 2 === 0 ? Role.USER : Role.ASSISTANT, content: [{ part: { case: "text" as const, value: text } }] })),
  ],
});
const response = create(CompleteResponseSchema, {
  id: "chatcmpl-1",
  model: "m",
  provider: "p",
  message: { role: Role.ASSISTANT, content: [{ part: { case: "text", value: "Open the project's Members tab and add them. ".repeat(10) } }] },
  usage: { inputTokens: 500, outputTokens: 120 },
  route: { provider: "p", upstreamModel: "m", attempts: 1 },
});

function measure(name: string, f: () => unknown): void {
  for (let i = 0; i < Math.min(20_000, calls); i++) f();
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) f();
  const used = process.cpuUsage(start);
  console.log(`${name.padEnd(44)} ${((used.user + used.system) / calls).toFixed(2)} µs CPU`);
}

console.log(`node ${process.version}; request ${toBinary(CompleteRequestSchema, request).length} bytes (protobuf); ${calls} calls\n`);
measure("key: canonical string + sha256 (Sluice)", () => requestKey(request, "fast"));
measure("key: protobuf-es toBinary + sha256", () => hash("sha256", toBinary(CompleteRequestSchema, request), "base64url"));
const store = createMemoryAnswerCache({ maxEntries: 10_000, maxBytes: 64 << 20, maxRecords: 1000 });
const scope = { tenant: "t", user: "-" };
const key = requestKey(request, "fast");
store.set(scope, key, response, 1000, 300_000, Date.now());
measure("hit: key + LRU lookup + answer copy", () => {
  const found = store.get(scope, requestKey(request, "fast")) as { response: typeof response };
  return { ...found.response, route: { ...found.response.route!, cacheStatus: 2 } };
});
