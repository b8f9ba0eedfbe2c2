import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Role } from "../../gen/sluice/v1/chat_pb.js";
import { CompleteRequestSchema } from "../../gen/sluice/v1/chat_service_pb.js";
import { canonicalFields, isDeterministic, requestKey } from "./request-key.js";

const base = () =>
  create(CompleteRequestSchema, {
    model: "m",
    temperature: 0,
    messages: [{ role: Role.USER, content: [{ part: { case: "text", value: "hi" } }] }],
  });

describe("requestKey", () => {
  it("covers every CompleteRequest field (a new proto field must be added to the canonical form)", () => {
    expect(CompleteRequestSchema.fields.map((f) => f.name)).toEqual([...canonicalFields]);
  });

  it("changes with every setting, the alias and the metadata; not with cache control or the idempotency key", () => {
    const key = requestKey(base(), "alias");
    expect(requestKey(base(), "alias")).toBe(key);
    expect(requestKey(base(), "other")).not.toBe(key);
    const variants = [
      { temperature: 0.1 },
      { topP: 1 },
      { maxOutputTokens: 5 },
      { stop: ["x"] },
      { seed: 1n },
      { presencePenalty: 0 },
      { frequencyPenalty: 0 },
      { topK: 3 },
      { parallelToolCalls: false },
      { metadata: { end_user: "a" } },
      { tools: [{ name: "t", description: "" }] },
      { toolChoice: { choice: { case: "toolName" as const, value: "t" } } },
      { responseFormat: { format: { case: "jsonObject" as const, value: {} } } },
    ];
    for (const variant of variants)
      expect(
        requestKey({ ...base(), ...variant } as never, "alias"),
        JSON.stringify(variant, (_, v) => (typeof v === "bigint" ? String(v) : v)),
      ).not.toBe(key);
    expect(
      requestKey(
        {
          ...base(),
          cache: { $typeName: "sluice.v1.CacheControl", bypass: true, noStore: false, maxAgeSeconds: 0, enabled: false },
        },
        "alias",
      ),
    ).toBe(key);
    expect(requestKey({ ...base(), idempotencyKey: "k" }, "alias")).toBe(key);
    // Length prefixes: moving text between messages changes the key.
    const split = create(CompleteRequestSchema, {
      messages: [
        { role: Role.USER, content: [{ part: { case: "text", value: "ab" } }] },
        { role: Role.USER, content: [{ part: { case: "text", value: "c" } }] },
      ],
    });
    const moved = create(CompleteRequestSchema, {
      messages: [
        { role: Role.USER, content: [{ part: { case: "text", value: "a" } }] },
        { role: Role.USER, content: [{ part: { case: "text", value: "bc" } }] },
      ],
    });
    expect(requestKey(split, "a")).not.toBe(requestKey(moved, "a"));
  });

  it("deterministic: temperature 0 or a seed", () => {
    expect(isDeterministic(base())).toBe(true);
    expect(isDeterministic({ ...base(), temperature: 0.5 })).toBe(false);
    expect(isDeterministic({ ...base(), temperature: 0.5, seed: 3n })).toBe(true);
  });
});
