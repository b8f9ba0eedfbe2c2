import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/load-config.js";
import { apiKeyHash } from "./api-keys.js";
import { type AuthOutcome, createAuthenticator } from "./authenticator.js";
import { createMtlsIdentities } from "./mtls-identities.js";
import { socketCertificate, uriSans } from "./mtls-socket.js";
import type { Peer, PeerCertificate } from "./peer.js";

const keyB = "sk-sluice-billing-0123456789abcdefghijklmnop";

function config(tenants: Record<string, unknown>, tls: Record<string, unknown> = { clientCaFile: "/ca.pem" }) {
  return parseConfig(
    {
      providers: { demo: { type: "demo" } },
      models: { demo: { deployments: [{ provider: "demo", model: "m" }] } },
      server: { tls: { certFile: "/cert.pem", keyFile: "/key.pem", ...tls } },
      tenants,
    },
    {},
  );
}

const tenants = {
  "team-a": { models: ["demo"], mtls: { uris: ["spiffe://example.org/team-a"] } },
  billing: {
    apiKeys: [{ sha256: apiKeyHash(keyB), id: "ci" }],
    models: ["claude"],
    mtls: { subjects: ["billing"] },
    allowFrom: ["10.0.0.0/8"],
  },
};

const cert = (subjectCN: string | undefined, ...uris: string[]): PeerCertificate => ({ subjectCN, uris });
const peer = (certificate: PeerCertificate | "unverified" | undefined, address = "10.1.2.3"): Peer => ({
  remoteAddress: () => address,
  certificate: () => certificate,
});

function settled(outcome: AuthOutcome | Promise<AuthOutcome>): AuthOutcome {
  if (outcome instanceof Promise) throw new Error("expected an outcome without a promise");
  return outcome;
}

describe("createMtlsIdentities", () => {
  const identities = createMtlsIdentities(config(tenants).tenants);

  it("a URI SAN names its tenant, exactly; keyId is the URI", () => {
    const identity = identities?.identify(cert("whatever", "spiffe://example.org/team-a"));
    expect(identity).toMatchObject({ tenant: "team-a", keyId: "spiffe://example.org/team-a", method: "mtls" });
    expect(identity?.models.allows("demo")).toBe(true);
    expect(identity?.models.allows("claude")).toBe(false);
    expect(identities?.identify(cert(undefined, "spiffe://example.org/team-a/sub"))).toBeUndefined();
    expect(identities?.identify(cert(undefined, "SPIFFE://example.org/team-a"))).toBeUndefined();
  });

  it("the subject CN names its tenant, exactly; keyId is CN=name", () => {
    expect(identities?.identify(cert("billing"))).toMatchObject({ tenant: "billing", keyId: "CN=billing" });
    expect(identities?.identify(cert("Billing"))).toBeUndefined();
    expect(identities?.identify(cert(undefined))).toBeUndefined();
  });

  it("a URI that names a tenant wins over the CN; URIs naming two tenants name none", () => {
    expect(identities?.identify(cert("billing", "spiffe://example.org/team-a"))?.tenant).toBe("team-a");
    const two = createMtlsIdentities(
      config({ ...tenants, "team-b": { models: ["demo"], mtls: { uris: ["spiffe://example.org/team-b"] } } }).tenants,
    );
    expect(two?.identify(cert(undefined, "spiffe://example.org/team-a", "spiffe://example.org/team-b"))).toBeUndefined();
  });

  it("is undefined when no tenant lists a certificate", () => {
    expect(createMtlsIdentities(config({ t: { models: ["demo"] } }).tenants)).toBeUndefined();
  });
});

describe("the authenticator's mTLS branch", () => {
  const auth = createAuthenticator(config(tenants));
  const outcome = (p: Peer | undefined, header: Record<string, string> = {}) =>
    settled(auth.authenticate(new Headers(header), p));

  it("no key and a verified certificate naming a tenant: that tenant", () => {
    expect(outcome(peer(cert(undefined, "spiffe://example.org/team-a")))).toMatchObject({
      identity: { tenant: "team-a", method: "mtls" },
      refusal: undefined,
    });
  });

  it("refuses an unverified certificate, one naming no tenant, none, and no peer", () => {
    expect(outcome(peer("unverified")).refusal).toBe("mtls_unverified");
    expect(outcome(peer(cert("nobody", "spiffe://example.org/nobody"))).refusal).toBe("mtls_unknown");
    expect(outcome(peer(undefined)).refusal).toBe("missing");
    expect(outcome(undefined).refusal).toBe("missing");
    expect(outcome({ remoteAddress: () => "10.1.2.3" }).refusal).toBe("missing");
  });

  it("the tenant's allowFrom applies to a certificate", () => {
    expect(outcome(peer(cert("billing"), "10.9.9.9")).identity?.tenant).toBe("billing");
    expect(outcome(peer(cert("billing"), "192.0.2.1"))).toMatchObject({ refusal: "address", tenant: "billing" });
  });

  it("a presented key decides, whatever the certificate", () => {
    expect(outcome(peer(cert(undefined, "spiffe://example.org/team-a")), { "x-api-key": keyB })).toMatchObject({
      identity: { tenant: "billing", method: "api_key" },
    });
    expect(outcome(peer(cert(undefined, "spiffe://example.org/team-a")), { "x-api-key": "sk-wrong" }).refusal).toBe("unknown");
  });

  it("without tenants.*.mtls the certificate is never read", () => {
    const plain = createAuthenticator(config({ t: { apiKeys: [{ sha256: apiKeyHash(keyB) }], models: ["demo"] } }));
    const never: Peer = {
      remoteAddress: () => "127.0.0.1",
      certificate: () => {
        throw new Error("read");
      },
    };
    expect(settled(plain.authenticate(new Headers(), never)).refusal).toBe("missing");
  });
});

describe("the configuration", () => {
  it("refuses one certificate name listed for two tenants", () => {
    expect(() => config({ ...tenants, other: { models: ["demo"], mtls: { uris: ["spiffe://example.org/team-a"] } } })).toThrow(
      /tenants\.other\.mtls\.uris\.0.*already listed for tenant "team-a"/s,
    );
    expect(() => config({ ...tenants, other: { models: ["demo"], mtls: { subjects: ["billing"] } } })).toThrow(
      /already listed for tenant "billing"/,
    );
  });

  it("refuses tenants.*.mtls without server.tls.clientCaFile", () => {
    expect(() => config(tenants, { clientCaFile: undefined })).toThrow(/server\.tls\.clientCaFile/);
  });
});

describe("socketCertificate", () => {
  const socket = (authorized: boolean, certificate: Record<string, unknown>) => {
    let reads = 0;
    return {
      authorized,
      getPeerCertificate: () => {
        reads++;
        return certificate;
      },
      reads: () => reads,
    };
  };

  it("a verified certificate: its CN and URI SANs, read once per socket", () => {
    const s = socket(true, { subject: { CN: "billing" }, subjectaltname: "DNS:a.example, URI:spiffe://example.org/x" });
    expect(socketCertificate(s)).toEqual({ subjectCN: "billing", uris: ["spiffe://example.org/x"] });
    socketCertificate(s);
    expect(s.reads()).toBe(1);
  });

  it("unverified, none, and not a TLS socket", () => {
    expect(socketCertificate(socket(false, { subject: { CN: "billing" } }))).toBe("unverified");
    expect(socketCertificate(socket(false, {}))).toBeUndefined();
    expect(socketCertificate({ remoteAddress: "127.0.0.1" })).toBeUndefined();
    expect(socketCertificate(undefined)).toBeUndefined();
  });

  it("several CNs name no one", () => {
    expect(socketCertificate(socket(true, { subject: { CN: ["a", "b"] } }))).toEqual({ subjectCN: undefined, uris: [] });
  });
});

describe("uriSans", () => {
  it("reads URI entries, JSON-quoted ones decoded", () => {
    expect(uriSans("URI:spiffe://a/b, DNS:x, URI:spiffe://c/d")).toEqual(["spiffe://a/b", "spiffe://c/d"]);
    expect(uriSans('URI:"spiffe://a/b,c", IP Address:127.0.0.1')).toEqual(["spiffe://a/b,c"]);
    expect(uriSans("DNS:URI:spiffe://x")).toEqual([]);
    expect(uriSans(undefined)).toEqual([]);
  });
});
