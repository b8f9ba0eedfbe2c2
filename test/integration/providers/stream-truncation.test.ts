import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { CompleteRequestSchema, type StreamCompleteResponse } from "../../../gen/sluice/v1/chat_service_pb.js";
import { Role } from "../../../gen/sluice/v1/chat_pb.js";
import { providerSchema } from "../../../src/config/provider-schema.js";
import type { Provider } from "../../../src/providers/provider.js";
import { createOpenAIProvider } from "../../../src/providers/openai/openai-provider.js";
import { createAnthropicProvider } from "../../../src/providers/anthropic/anthropic-provider.js";
import { sseResponse, startFakeUpstream, type FakeUpstream } from "../../helpers/fake-upstream.js";
import { readSseFixture, sseFixtureNames } from "../../fixtures/providers/openai/fixtures.js";
import { sseTranscript, streamFixtures } from "../../fixtures/providers/anthropic/fixtures.js";

/**
 * Every recorded stream, cut at many points (seeded, plus every event boundary near the
 * end), ended either cleanly or by a reset: what reaches the caller is always a prefix of
 * the uncut stream's events, and it ends with `done` only when the provider's terminal
 * event (`[DONE]`, `message_stop`) arrived whole — otherwise with a retryable UNAVAILABLE
 * error. Never a clean end without `done`, never an event the uncut stream does not have.
 */

let fake: FakeUpstream;
const providers: Record<"openai" | "anthropic", Provider> = {} as never;

beforeAll(async () => {
  fake = await startFakeUpstream();
  providers.openai = createOpenAIProvider(
    "oai",
    providerSchema.parse({ type: "openai", baseUrl: `${fake.origin}/v1`, apiKey: "sk-test-trunc-0000" }) as never,
  );
  providers.anthropic = createAnthropicProvider(
    "ant",
    providerSchema.parse({ type: "anthropic", baseUrl: fake.origin, apiKey: "sk-ant-test-trunc-0000" }) as never,
  );
});
afterAll(async () => {
  await Promise.all(Object.values(providers).map((p) => p.close()));
  await fake.close();
});

const request = create(CompleteRequestSchema, {
  model: "alias",
  messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "Hi" } }] }],
});

async function run(provider: Provider, body: Buffer, reset: boolean) {
  fake.respond(() => sseResponse([body], reset ? { resetAfterChunks: 1 } : {}));
  const events: StreamCompleteResponse[] = [];
  try {
    for await (const event of provider.stream(request, { model: "m", signal: new AbortController().signal })) events.push(event);
  } catch (err) {
    return { events, error: err as ConnectError };
  }
  return { events, error: undefined };
}

/** Seeded offsets spread over the body, and every event boundary (± 1 byte) in its last 400 bytes. */
function cutPoints(body: Buffer, seed: number): number[] {
  let state = seed >>> 0;
  // 0: nothing at all; the last two: the terminal event without its closing blank line.
  const points = new Set<number>([0, 1, body.length - 2, body.length - 1]);
  for (let i = 0; i < 12; i++) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    points.add(state % body.length);
  }
  for (
    let at = body.indexOf("\n\n", Math.max(0, body.length - 400));
    at !== -1 && at < body.length - 2;
    at = body.indexOf("\n\n", at + 1)
  ) {
    for (const p of [at, at + 1, at + 2]) if (p > 0 && p < body.length) points.add(p);
  }
  return [...points].sort((a, b) => a - b);
}

/** Events as comparable text (a bigint-safe JSON of each oneof). */
const plain = (events: StreamCompleteResponse[]) =>
  events.map((e) => JSON.stringify(e.event, (_k, v) => (typeof v === "bigint" ? String(v) : v)));

const cases: Array<[string, "openai" | "anthropic", string]> = [
  ...sseFixtureNames.map((name): [string, "openai", string] => [`openai ${name}`, "openai", readSseFixture(name)]),
  ...streamFixtures()
    .filter((f) => !f.includes("error_event"))
    .map((f): [string, "anthropic", string] => [`anthropic ${f}`, "anthropic", sseTranscript(f)]),
];

describe("recorded streams cut anywhere", () => {
  it.each(cases)(
    "%s: a prefix of the events, then done only if the terminal event arrived whole",
    async (_name, kind, transcript) => {
      const provider = providers[kind];
      const body = Buffer.from(transcript, "utf8");
      const whole = await run(provider, body, false);
      expect(whole.error).toBeUndefined();
      const reference = plain(whole.events);
      expect(whole.events.at(-1)?.event.case).toBe("done");

      for (const cut of cutPoints(body, body.length)) {
        for (const reset of [false, true]) {
          const label = `cut at ${cut}/${body.length}${reset ? " + reset" : ""}`;
          const { events, error } = await run(provider, body.subarray(0, cut), reset);
          const seen = plain(events);
          expect(seen, label).toEqual(reference.slice(0, seen.length));
          expect(
            events.some((e) => e.event.case === "done"),
            label,
          ).toBe(false);
          expect(error, label).toBeInstanceOf(ConnectError);
          expect(error!.code, `${label}: ${error!.message}`).toBe(Code.Unavailable);
          const reason = error!.findDetails(ErrorInfoSchema)[0]?.reason;
          expect(["UPSTREAM_STREAM_INCOMPLETE", "UPSTREAM_CONNECTION"], `${label}: ${reason}`).toContain(reason);
        }
      }
    },
  );
});
