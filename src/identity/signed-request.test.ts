import { createHash } from "node:crypto";
import { createMemoryState } from "../state/memory-state.js";
import { StateUnavailableError } from "../state/state-store.js";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/load-config.js";
import { type AuthOutcome, createAuthenticator } from "./authenticator.js";
import type { Peer } from "./peer.js";
import { createSignedRequests, requestPath, signatureOf } from "./signed-request.js";

const secret = "s3cret-PLANTED-signing-0123456789abcdef";
const path = "/sluice.v1.ChatService/Chat";
const body = '{"model":"demo"}';
const t0 = 1_800_000_000_000;

function config(extra: Record<string, unknown> = {}) {
  return parseConfig(
    {
      providers: { demo: { type: "demo" } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
      tenants: {
        svc: { signingKeys: [{ id: "svc-1", secret }], models: ["demo"] },
        other: { apiKeys: [], models: [] },
      },
      ...extra,
    },
    {},
  );
}

const sha = (bytes: string) => createHash("sha256").update(bytes).digest("hex");

/** A peer whose lane hashed `sent` (the bytes on the wire). */
const peerFor = (sent: string): Peer => ({ remoteAddress: () => "10.0.0.1", bodySha256: () => sha(sent) });

function signed(
  options: { key?: string; secret?: string; method?: string; path?: string; ts?: number; nonce?: string; body?: string } = {},
) {
  const ts = String(Math.floor((options.ts ?? t0) / 1000));
  const nonce = options.nonce ?? "nonce-0123456789abcdef";
  const signature = signatureOf(
    options.secret ?? secret,
    options.method ?? "POST",
    options.path ?? path,
    ts,
    nonce,
    sha(options.body ?? body),
  );
  return new Headers({
    "x-sluice-key-id": options.key ?? "svc-1",
    "x-sluice-timestamp": ts,
    "x-sluice-nonce": nonce,
    "x-sluice-signature": signature,
  });
}

const line = { requestMethod: "POST", url: `https://gw.example${path}` };

describe("signed requests", () => {
  function make(now = t0) {
    let clock = now;
    const auth = createAuthenticator(config(), { now: () => clock });
    return {
      check: (header: Headers, peer: Peer | undefined = peerFor(body), request = line) =>
        auth.authenticate(header, peer, request) as AuthOutcome,
      advance: (ms: number) => {
        clock += ms;
      },
    };
  }

  it("admits a valid signature as the key's tenant", () => {
    const outcome = make().check(signed());
    expect(outcome.refusal).toBeUndefined();
    expect(outcome.identity).toMatchObject({ tenant: "svc", keyId: "svc-1", method: "signature" });
    expect(outcome.identity?.models.allows("demo")).toBe(true);
  });

  it("refuses a wrong secret, a tampered body, path or method", () => {
    const { check } = make();
    expect(check(signed({ secret: `${secret}x`, nonce: "nonce-a-0123456789ab" })).refusal).toBe("signature_invalid");
    expect(check(signed({ nonce: "nonce-b-0123456789ab" }), peerFor(`${body} `)).refusal).toBe("signature_invalid");
    expect(check(signed({ path: "/sluice.v1.ChatService/ChatStream", nonce: "nonce-c-0123456789ab" })).refusal).toBe(
      "signature_invalid",
    );
    expect(check(signed({ method: "GET", nonce: "nonce-d-0123456789ab" })).refusal).toBe("signature_invalid");
  });

  it("refuses a stale or future timestamp, at the window's edge and past it", () => {
    const { check } = make();
    expect(check(signed({ ts: t0 - 300_000, nonce: "nonce-e-0123456789ab" })).refusal).toBeUndefined();
    expect(check(signed({ ts: t0 - 301_000, nonce: "nonce-f-0123456789ab" })).refusal).toBe("signature_stale");
    expect(check(signed({ ts: t0 + 301_000, nonce: "nonce-g-0123456789ab" })).refusal).toBe("signature_stale");
  });

  it("refuses a replayed nonce for as long as its timestamp is accepted, and only after a valid signature", () => {
    const { check, advance } = make();
    // A forged request with a victim's nonce does not spend it.
    expect(check(signed({ secret: `${secret}x` })).refusal).toBe("signature_invalid");
    expect(check(signed()).refusal).toBeUndefined();
    expect(check(signed()).refusal).toBe("signature_replayed");
    advance(299_000);
    expect(check(signed()).refusal).toBe("signature_replayed");
    advance(2_000);
    expect(check(signed()).refusal).toBe("signature_stale");
  });

  it("refuses an unknown key id, malformed headers and an unhashed body", () => {
    const { check } = make();
    expect(check(signed({ key: "svc-2" })).refusal).toBe("signature_unknown");
    const mutate = (name: string, value: string | undefined) => {
      const header = signed({ nonce: "nonce-h-0123456789ab" });
      if (value === undefined) header.delete(name);
      else header.set(name, value);
      return check(header).refusal;
    };
    expect(mutate("x-sluice-key-id", undefined)).toBe("signature_malformed");
    expect(mutate("x-sluice-timestamp", "soon")).toBe("signature_malformed");
    expect(mutate("x-sluice-nonce", "short")).toBe("signature_malformed");
    expect(mutate("x-sluice-nonce", "has a space 0123456789")).toBe("signature_malformed");
    expect(mutate("x-sluice-signature", "A".repeat(64))).toBe("signature_malformed");
    expect(mutate("x-sluice-signature", "ab")).toBe("signature_malformed");
    // connect-node served it: no body hash.
    expect(check(signed({ nonce: "nonce-i-0123456789ab" }), { remoteAddress: () => undefined }).refusal).toBe(
      "signature_unsupported",
    );
  });

  it("bounds the nonces it remembers (refusing, never forgetting early) and forgets expired ones", () => {
    let clock = t0;
    const signer = createSignedRequests(config(), () => clock, 2);
    const verify = (nonce: string) => signer?.verify(signed({ nonce, ts: clock }), peerFor(body), line);
    expect(verify("nonce-1-0123456789ab")).toMatchObject({ tenant: "svc" });
    expect(verify("nonce-2-0123456789ab")).toMatchObject({ tenant: "svc" });
    expect(verify("nonce-3-0123456789ab")).toBe("signature_busy");
    clock += 600_000;
    expect(verify("nonce-3-0123456789ab")).toMatchObject({ tenant: "svc" });
  });

  it("with shared nonces (Redis), a request replayed to another replica is refused; an unreachable store falls back to local", async () => {
    const clock = t0;
    const store = createMemoryState();
    const replicaA = createSignedRequests(config(), () => clock, undefined, store);
    const replicaB = createSignedRequests(config(), () => clock, undefined, store);
    const header = signed({ nonce: "nonce-shared-0123456789", ts: clock });
    expect(await replicaA?.verify(header, peerFor(body), line)).toMatchObject({ tenant: "svc" });
    expect(await replicaB?.verify(header, peerFor(body), line)).toBe("signature_replayed");
    const down = {
      rememberOnce: () => Promise.reject(new StateUnavailableError("redis down")),
    };
    const degraded = createSignedRequests(config(), () => clock, undefined, down);
    const again = signed({ nonce: "nonce-down-0123456789a", ts: clock });
    expect(await degraded?.verify(again, peerFor(body), line)).toMatchObject({ tenant: "svc" });
    expect(await degraded?.verify(again, peerFor(body), line)).toBe("signature_replayed");
  });

  it("leaves unsigned calls to the other credentials, and needs signing keys", () => {
    const { check } = make();
    expect(check(new Headers()).refusal).toBe("missing");
    expect(createSignedRequests(config({ tenants: { a: { models: [] } } }), Date.now)).toBeUndefined();
  });

  it("signs the path without authority or query", () => {
    expect(requestPath("https://h:8080/a.B/C?x=1")).toBe("/a.B/C");
    expect(requestPath("/a.B/C")).toBe("/a.B/C");
    expect(requestPath("http://h")).toBe("/");
  });

  it("validates the configuration: secret length, unique ids, the window", () => {
    const tenants = (a: unknown, b: unknown = []) => ({
      tenants: { a: { signingKeys: a, models: [] }, b: { signingKeys: b, models: [] } },
    });
    expect(() => config(tenants([{ id: "k", secret: "short" }]))).toThrow(/signingKeys.*32/s);
    expect(() => config(tenants([{ id: "k", secret }], [{ id: "k", secret }]))).toThrow(/tenants\.b\.signingKeys\.0\.id/);
    expect(() => config({ auth: { signedRequests: { windowSec: 0 } } })).toThrow(/windowSec/);
    expect(config().auth.signedRequests.windowSec).toBe(300);
  });
});
