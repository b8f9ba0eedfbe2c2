import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { ConfigError } from "../../src/config/load-config.js";
import { providerSchema } from "../../src/config/provider-schema.js";
import { createProvider } from "../../src/providers/create-providers.js";
import type { Provider } from "../../src/providers/provider.js";
import { createCapturedLogger, type CapturedLogger } from "../helpers/captured-logger.js";
import { createChatCaller, type ChatCaller, type CompleteRequestInit } from "../helpers/chat-callers.js";
import {
  jsonResponse,
  sseResponse,
  startFakeUpstream,
  type FakeUpstream,
  type RecordedRequest,
  type ScriptedResponse,
} from "../helpers/fake-upstream.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { waitUntil } from "../helpers/wait-until.js";
import { readSseFixture } from "../fixtures/providers/openai/fixtures.js";

// Provider keys end to end: fake providers that accept only some keys, Sluice configured with
// several keys (apiKeys) or a key file (apiKeyFile), real sockets. A revoked (401) or
// throttled (429) key costs the caller nothing while another key works; a rewritten key file
// is used without a restart; no key ever reaches a log line or an answer.

/** Every key in this file, planted to be looked for afterwards. One is not `sk-`-shaped (Azure). */
const keys = {
  failoverRevoked: "sk-proj-PLANTED-failover-revoked-1a2b3c",
  failoverGood: "sk-proj-PLANTED-failover-good-4d5e6f",
  throttled: "sk-proj-PLANTED-throttled-7a8b9c",
  throttledSpare: "sk-proj-PLANTED-throttled-spare-0d1e2f",
  streamRevoked: "sk-proj-PLANTED-stream-revoked-3a4b5c",
  streamGood: "sk-proj-PLANTED-stream-good-6d7e8f",
  allRevoked1: "sk-proj-PLANTED-all-revoked-one-9a0b1c",
  allRevoked2: "b3f1c0de9a8e4d7fa1c2e3f4a5b6c7d8",
  fileFirst: "sk-proj-PLANTED-file-first-2d3e4f",
  fileSecond: "sk-proj-PLANTED-file-second-5a6b7c",
  claudeOne: "sk-ant-PLANTED-rr-one-8d9e0f",
  claudeTwo: "sk-ant-PLANTED-rr-two-1a2b3c",
} as const;
const planted = Object.values(keys);

/** What each fake provider does with a key; a key it does not list is refused (401), as a revoked key is. */
type KeyBehaviour = "ok" | "revoked" | ScriptedResponse;
const behaviour = new Map<string, KeyBehaviour>();

const openaiCompletion = {
  id: "chatcmpl-keys",
  object: "chat.completion",
  created: 1_727_346_168,
  model: "gpt-4o-2024-08-06",
  choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
};
const anthropicMessage = {
  id: "msg_keys",
  type: "message",
  role: "assistant",
  model: "claude-sonnet-4-5",
  content: [{ type: "text", text: "hello" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 3, output_tokens: 1 },
};
const openaiStream = readSseFixture("py_plain_text_usage.sse");

/** The key a request carried (OpenAI: bearer token; Anthropic: x-api-key). */
function keyOf(request: RecordedRequest): string {
  const authorization = request.headers.authorization;
  if (typeof authorization === "string") return authorization.replace(/^Bearer /, "");
  return String(request.headers["x-api-key"] ?? "");
}

/** A 401 as OpenAI sends it, echoing the key: the caller must never see it. */
function revoked(key: string): ScriptedResponse {
  return jsonResponse(401, {
    error: {
      message: `Incorrect API key provided: ${key}.`,
      type: "invalid_request_error",
      param: null,
      code: "invalid_api_key",
    },
  });
}

function respond(success: (request: RecordedRequest) => ScriptedResponse) {
  return (request: RecordedRequest): ScriptedResponse => {
    const key = keyOf(request);
    const what = behaviour.get(key) ?? "revoked";
    if (what === "revoked") return revoked(key);
    if (what === "ok") return success(request);
    return what;
  };
}

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let sluice: StartedSluice;
let log: CapturedLogger;
let caller: ChatCaller;
let keyDir: string;
/** A Kubernetes secret mount: `keys` → `..data/keys`, `..data` → a timestamped directory. */
let mountDir: string;
let generation = 0;

/** Writes a new timestamped directory and swaps `..data` to it with a rename, as the kubelet does. */
function kubeletUpdate(text: string): void {
  const version = `..2026_01_0${++generation}_00_00_00.000000000`;
  mkdirSync(join(mountDir, version));
  writeFileSync(join(mountDir, version, "keys"), text);
  symlinkSync(version, join(mountDir, "..data_tmp"));
  renameSync(join(mountDir, "..data_tmp"), join(mountDir, "..data"));
}

const noRetry = { maxAttempts: 1 };
const deployment = (provider: string, model = "gpt-4o") => ({ deployments: [{ provider, model }], retry: noRetry });

beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), "sluice-keys-"));
  mountDir = join(keyDir, "mount");
  mkdirSync(mountDir);
  kubeletUpdate(`# rotated by the secret manager\n${keys.fileFirst}\n`);
  symlinkSync(join("..data", "keys"), join(mountDir, "keys"));

  openai = await startFakeUpstream(
    respond((request) => {
      const body = request.body as { stream?: boolean };
      return body.stream ? sseResponse([openaiStream]) : jsonResponse(200, openaiCompletion);
    }),
  );
  anthropic = await startFakeUpstream(respond(() => jsonResponse(200, anthropicMessage)));
  log = createCapturedLogger("trace");
  const baseUrl = `${openai.origin}/v1`;
  sluice = await startSluice(
    {
      providers: {
        failover: { type: "openai", baseUrl, apiKeys: ["${FAILOVER_REVOKED}", "${FAILOVER_GOOD}"] },
        throttle: { type: "openai", baseUrl, apiKeys: [keys.throttled, keys.throttledSpare] },
        streaming: { type: "openai", baseUrl, apiKeys: [keys.streamRevoked, keys.streamGood] },
        refused: { type: "openai", baseUrl, apiKeys: [keys.allRevoked1, keys.allRevoked2], apiKeyHeader: "api-key" },
        mounted: { type: "openai", baseUrl, apiKeyFile: join(mountDir, "keys") },
        claude: {
          type: "anthropic",
          baseUrl: anthropic.origin,
          apiKeys: [keys.claudeOne, keys.claudeTwo],
          keySelection: "round-robin",
        },
      },
      models: {
        failover: deployment("failover"),
        throttle: deployment("throttle"),
        streaming: deployment("streaming"),
        refused: deployment("refused"),
        mounted: deployment("mounted"),
        claude: deployment("claude", "claude-sonnet-4-5"),
      },
      resilience: { breaker: { volumeThreshold: 1_000_000 } },
    },
    {
      env: { FAILOVER_REVOKED: keys.failoverRevoked, FAILOVER_GOOD: keys.failoverGood },
      logger: log.logger,
    },
  );
  caller = createChatCaller("connect-json-h1", sluice.url);
});

afterAll(async () => {
  caller?.close();
  await sluice?.close();
  await Promise.all([openai?.close(), anthropic?.close()]);
  // Every planted key reached a provider, and none reached a log line.
  const logged = log.lines.map((line) => JSON.stringify(line)).join("\n");
  for (const key of planted) expect(logged.includes(key), `a log line contains ${key}`).toBe(false);
  rmSync(keyDir, { recursive: true, force: true });
});

beforeEach(() => {
  behaviour.clear();
  openai.requests.length = 0;
  anthropic.requests.length = 0;
});

const ask = (model: string): CompleteRequestInit => ({
  model,
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hello" } }] }],
});

/** The keys the fake providers saw, in order. */
const keysSent = (upstream: FakeUpstream): string[] => upstream.requests.map(keyOf);

/** Everything a caller can read of an error: message, details, metadata. */
function errorText(error: ConnectError): string {
  const details = error.findDetails(ErrorInfoSchema).map((info) => JSON.stringify(info));
  return [error.message, error.rawMessage, ...details, JSON.stringify([...error.metadata])].join("\n");
}

describe("several keys (apiKeys)", () => {
  it("a revoked key: the same call goes again at once with the next key, and later calls skip the revoked one", async () => {
    behaviour.set(keys.failoverGood, "ok");
    const first = await caller.complete(ask("failover"));
    expect(first.route?.attempts).toBe(1);
    expect(keysSent(openai)).toEqual([keys.failoverRevoked, keys.failoverGood]);
    await caller.complete(ask("failover"));
    await caller.complete(ask("failover"));
    expect(keysSent(openai)).toEqual([keys.failoverRevoked, keys.failoverGood, keys.failoverGood, keys.failoverGood]);
  });

  it("a rate-limited key (429, Retry-After): the other key serves the call and the calls after it", async () => {
    behaviour.set(
      keys.throttled,
      jsonResponse(429, { error: { message: "Rate limit reached", type: "requests" } }, { "retry-after": "30" }),
    );
    behaviour.set(keys.throttledSpare, "ok");
    const first = await caller.complete(ask("throttle"));
    expect(first.route?.attempts).toBe(1);
    await caller.complete(ask("throttle"));
    expect(keysSent(openai)).toEqual([keys.throttled, keys.throttledSpare, keys.throttledSpare]);
  });

  it("a stream: a revoked key is replaced before the first event, the caller sees a whole stream", async () => {
    behaviour.set(keys.streamGood, "ok");
    const { events, error } = await caller.stream(ask("streaming"));
    expect(error).toBeUndefined();
    expect(events.at(0)?.event.case).toBe("start");
    expect(events.at(-1)?.event.case).toBe("done");
    expect(keysSent(openai)).toEqual([keys.streamRevoked, keys.streamGood]);
  });

  it("every key refused: each tried once, the caller gets UPSTREAM_AUTH and no key, echoed or not", async () => {
    const error = await caller.completeError(ask("refused"));
    expect(error.code).toBe(Code.Internal);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UPSTREAM_AUTH");
    expect(openai.requests.map((request) => request.headers["api-key"])).toEqual([keys.allRevoked1, keys.allRevoked2]);
    for (const key of planted) expect(errorText(error)).not.toContain(key);
  });

  it("round-robin: calls take turns; a key revoked since is skipped", async () => {
    behaviour.set(keys.claudeOne, "ok");
    behaviour.set(keys.claudeTwo, "ok");
    for (let i = 0; i < 4; i++) await caller.complete(ask("claude"));
    expect(keysSent(anthropic)).toEqual([keys.claudeOne, keys.claudeTwo, keys.claudeOne, keys.claudeTwo]);
    anthropic.requests.length = 0;
    behaviour.set(keys.claudeOne, "revoked");
    for (let i = 0; i < 3; i++) await caller.complete(ask("claude"));
    expect(keysSent(anthropic)).toEqual([keys.claudeOne, keys.claudeTwo, keys.claudeTwo, keys.claudeTwo]);
  });
});

describe("a key file (apiKeyFile)", () => {
  it("a Kubernetes secret update (..data swapped) is used without a restart", async () => {
    behaviour.set(keys.fileFirst, "ok");
    behaviour.set(keys.fileSecond, "ok");
    await caller.complete(ask("mounted"));
    expect(keysSent(openai)).toEqual([keys.fileFirst]);

    kubeletUpdate(`${keys.fileSecond}\n`);
    // The reload is asynchronous (a directory event, then a read): call until a call carries the new key.
    await eventually(async () => {
      await caller.complete(ask("mounted"));
      return keysSent(openai).at(-1) === keys.fileSecond;
    }, "a call with the rotated key");
    // The old key is revoked now: every later call carries the new one.
    behaviour.set(keys.fileFirst, "revoked");
    openai.requests.length = 0;
    for (let i = 0; i < 3; i++) await caller.complete(ask("mounted"));
    expect(keysSent(openai)).toEqual([keys.fileSecond, keys.fileSecond, keys.fileSecond]);
  });

  it("a missing key file stops startup with a ConfigError naming the provider and the path", async () => {
    const missing = join(keyDir, "absent", "keys");
    const failure = await startSluice({
      providers: { oai: { type: "openai", baseUrl: `${openai.origin}/v1`, apiKeyFile: missing } },
      models: { m: deployment("oai") },
    }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toBe(`providers.oai.apiKeyFile: ${missing} cannot be read (ENOENT)`);
  });
});

/** Runs `attempt` until it returns true, at most `withinMs`; for state no event announces to the test. */
async function eventually(attempt: () => Promise<boolean>, what: string, withinMs = 10_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await attempt())) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(20);
  }
}

describe("a provider's key file and its log lines", () => {
  // The provider alone (real undici, a real file), with a logger of its own: what Sluice logs
  // about its keys — reloads, unusable rewrites, benched keys — and that no line holds a key.
  let dir: string;
  let file: string;
  let provider: Provider | undefined;
  let providerLog: CapturedLogger;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sluice-keyfile-"));
    file = join(dir, "openai-keys");
    providerLog = createCapturedLogger("debug");
  });
  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    rmSync(dir, { recursive: true, force: true });
    const logged = providerLog.lines.map((line) => JSON.stringify(line)).join("\n");
    for (const key of planted) expect(logged.includes(key), `a log line contains ${key}`).toBe(false);
  });

  function open(): Provider {
    const config = providerSchema.parse({ type: "openai", baseUrl: `${openai.origin}/v1`, apiKeyFile: file });
    provider = createProvider("keyed", config, { logger: providerLog.logger });
    return provider;
  }
  const request = create(CompleteRequestSchema, ask("m"));
  const call = () => ({ model: "gpt-4o", signal: new AbortController().signal });
  const reloads = () => providerLog.withMessage("provider keys reloaded");

  it("a file rewritten in place: reloaded (logged with a count), the next call carries the new key", async () => {
    writeFileSync(file, `${keys.fileFirst}\n`);
    behaviour.set(keys.fileFirst, "ok");
    behaviour.set(keys.fileSecond, "ok");
    const keyed = open();
    await keyed.complete(request, call());
    writeFileSync(file, `# new key\n${keys.fileSecond}\n${keys.failoverGood}\n`);
    await waitUntil(() => reloads().length === 1, "the key file reloaded");
    expect(reloads()[0]).toMatchObject({ level: 30, provider: "keyed", keyCount: 2 });
    await keyed.complete(request, call());
    expect(keysSent(openai)).toEqual([keys.fileFirst, keys.fileSecond]);
  });

  it("rewritten empty: the previous keys stay in use and one warning names the path", async () => {
    writeFileSync(file, `${keys.fileFirst}\n`);
    behaviour.set(keys.fileFirst, "ok");
    const keyed = open();
    writeFileSync(file, "");
    const unusable = () => providerLog.withMessage("provider key file unusable: the previous keys stay in use");
    await waitUntil(() => unusable().length === 1, "the unusable key file reported");
    expect(unusable()[0]).toMatchObject({ level: 40, provider: "keyed", path: file, problem: "holds no key" });
    await keyed.complete(request, call());
    expect(keysSent(openai)).toEqual([keys.fileFirst]);
  });

  it("a revoked key among the file's keys is logged once, by fingerprint, and skipped", async () => {
    writeFileSync(file, `${keys.fileFirst}\n${keys.fileSecond}\n`);
    behaviour.set(keys.fileSecond, "ok");
    const keyed = open();
    await keyed.complete(request, call());
    await keyed.complete(request, call());
    expect(keysSent(openai)).toEqual([keys.fileFirst, keys.fileSecond, keys.fileSecond]);
    const benched = providerLog.withMessage("provider key refused: other keys used while it is benched");
    expect(benched).toHaveLength(1);
    expect(benched[0]).toMatchObject({ level: 40, provider: "keyed", benchMs: 60_000 });
    expect(benched[0]!["keyFingerprint"]).toMatch(/^[0-9a-f]{8}$/);
  });

  it("an answer's error never carries a key: every key refused", async () => {
    writeFileSync(file, `${keys.fileFirst}\n${keys.fileSecond}\n`);
    const keyed = open();
    const error = await keyed.complete(request, call()).then(
      () => {
        throw new Error("expected the call to fail");
      },
      (err: unknown) => ConnectError.from(err),
    );
    expect(error.code).toBe(Code.Internal);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("UPSTREAM_AUTH");
    for (const key of planted) expect(errorText(error)).not.toContain(key);
  });
});
