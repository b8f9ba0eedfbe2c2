import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, Role } from "../../gen/sluice/v1/chat_pb.js";
import { loadConfig } from "../../src/config/load-config.js";
import type { SluiceConfig } from "../../src/config/schema.js";
import { jsonResponse, startFakeUpstream, type FakeUpstream } from "../helpers/fake-upstream.js";
import { startSluice, type StartedSluice } from "../helpers/start-sluice.js";
import { callerProtocols, createChatCaller, responseSummary, type ChatCaller } from "../helpers/chat-callers.js";
import { nonstreamRecordings } from "../fixtures/providers/openai/fixtures.js";
import { nockRecordings } from "../fixtures/providers/anthropic/fixtures.js";

// The embedded default (no configuration file): `npm start` with OPENAI_API_KEY /
// ANTHROPIC_API_KEY set serves their models beside `demo`, each reaching its provider —
// here fakes named by OPENAI_BASE_URL / ANTHROPIC_BASE_URL — with the key from the env.

const openaiKey = "sk-env-openai-0f9e8d7c6b5a";
const anthropicKey = "sk-ant-env-anthropic-1a2b3c4d5e";

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let env: Record<string, string>;
let loaded: SluiceConfig;
let sluice: StartedSluice;

beforeAll(async () => {
  openai = await startFakeUpstream();
  anthropic = await startFakeUpstream();
  env = {
    OPENAI_API_KEY: openaiKey,
    OPENAI_BASE_URL: `${openai.origin}/v1`,
    ANTHROPIC_API_KEY: anthropicKey,
    ANTHROPIC_BASE_URL: anthropic.origin,
  };
  // What main.ts does with no --config: loadConfig(undefined, process.env).
  loaded = await loadConfig(undefined, env);
  // startSluice with no document serves that same embedded default, resolved with `env`.
  sluice = await startSluice(undefined, { env });
});
afterAll(async () => {
  await sluice?.close();
  await Promise.all([openai?.close(), anthropic?.close()]);
});

describe("loadConfig with no file", () => {
  it("is what the test server runs: the same providers and models", () => {
    expect(sluice.config.providers).toEqual(loaded.providers);
    expect(sluice.config.models).toEqual(loaded.models);
    expect(loaded.providers["openai"]).toMatchObject({ type: "openai", baseUrl: `${openai.origin}/v1`, apiKey: openaiKey });
    expect(loaded.providers["anthropic"]).toMatchObject({ type: "anthropic", baseUrl: anthropic.origin, apiKey: anthropicKey });
  });

  it("adds a provider only when its key is set", async () => {
    expect(Object.keys((await loadConfig(undefined, {})).models)).toEqual(["demo"]);
    const openaiOnly = await loadConfig(undefined, { OPENAI_API_KEY: openaiKey });
    expect(Object.keys(openaiOnly.providers)).toEqual(["demo", "openai"]);
    expect(openaiOnly.providers["openai"]).toMatchObject({ baseUrl: "https://api.openai.com/v1" });
    const anthropicOnly = await loadConfig(undefined, { ANTHROPIC_API_KEY: anthropicKey });
    expect(Object.keys(anthropicOnly.providers)).toEqual(["demo", "anthropic"]);
    expect(anthropicOnly.providers["anthropic"]).toMatchObject({ baseUrl: "https://api.anthropic.com" });
  });
});

describe.each(callerProtocols)("embedded default with provider keys, over %s", (protocol) => {
  let caller: ChatCaller;
  beforeAll(() => {
    caller = createChatCaller(protocol, sluice.url);
  });
  afterAll(() => caller.close());

  const ask = (model: string, prompt: string) => ({
    model,
    messages: [{ role: Role.USER, content: [{ part: { case: "text" as const, value: prompt } }] }],
  });

  it("ListModels: gpt-4o-mini and claude-sonnet-4-5 beside demo", async () => {
    const { models } = await caller.listModels();
    expect(models.map((m) => m.alias)).toEqual(expect.arrayContaining(["demo", "gpt-4o-mini", "claude-sonnet-4-5"]));
    const byAlias = new Map(models.map((m) => [m.alias, m]));
    expect(byAlias.get("demo")).toMatchObject({ provider: "demo", upstreamModel: "sluice-demo-1" });
    expect(byAlias.get("gpt-4o-mini")).toMatchObject({
      provider: "openai",
      upstreamModel: "gpt-4o-mini",
      contextWindow: 128_000,
      deployments: [{ provider: "openai", upstreamModel: "gpt-4o-mini", providerType: "openai" }],
    });
    expect(byAlias.get("claude-sonnet-4-5")).toMatchObject({
      provider: "anthropic",
      upstreamModel: "claude-sonnet-4-5",
      contextWindow: 200_000,
      deployments: [{ provider: "anthropic", upstreamModel: "claude-sonnet-4-5", providerType: "anthropic" }],
    });
  });

  it("Complete on gpt-4o-mini reaches OPENAI_BASE_URL with OPENAI_API_KEY", async () => {
    openai.respond(() => jsonResponse(200, nonstreamRecordings()["py_chat_completions_recorded.json: test_parse_nothing"]));
    const before = openai.requests.length;
    const response = await caller.complete(ask("gpt-4o-mini", `hello openai over ${protocol}`));
    expect(responseSummary(response)).toMatchObject({
      id: "chatcmpl-ABfvaueLEMLNYbT8YzpJxsmiQ6HSY",
      provider: "openai",
      finishReason: FinishReason.STOP,
      usage: { input: 14, output: 37 },
    });
    expect(openai.requests.length).toBe(before + 1);
    const sent = openai.requests.at(-1)!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers["authorization"]).toBe(`Bearer ${openaiKey}`);
    expect(sent.body).toEqual({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `hello openai over ${protocol}` }],
    });
  });

  it("Complete on claude-sonnet-4-5 reaches ANTHROPIC_BASE_URL with ANTHROPIC_API_KEY", async () => {
    anthropic.respond(() => jsonResponse(200, nockRecordings()[1]!.response));
    const before = anthropic.requests.length;
    const response = await caller.complete(ask("claude-sonnet-4-5", `hello anthropic over ${protocol}`));
    expect(responseSummary(response)).toMatchObject({
      id: "msg_01J176zPPSGQBvQpzw2qy5x4",
      provider: "anthropic",
      finishReason: FinishReason.STOP,
      usage: { input: 505, output: 41 },
    });
    expect(anthropic.requests.length).toBe(before + 1);
    const sent = anthropic.requests.at(-1)!;
    expect(sent.path).toBe("/v1/messages");
    expect(sent.headers["x-api-key"]).toBe(anthropicKey);
    expect(sent.headers["authorization"]).toBeUndefined();
    // The embedded default's deployments set maxOutputTokens 8192 for Claude.
    expect(sent.body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: 8192,
      messages: [{ role: "user", content: `hello anthropic over ${protocol}` }],
      stream: false,
    });
  });

  it("demo still answers with the keys set, and sends nothing upstream", async () => {
    const before = openai.requests.length + anthropic.requests.length;
    const response = await caller.complete(ask("demo", "hello demo"));
    expect(response.provider).toBe("demo");
    expect(openai.requests.length + anthropic.requests.length).toBe(before);
  });
});
