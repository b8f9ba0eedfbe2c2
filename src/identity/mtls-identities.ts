import type { SluiceConfig } from "../config/schema.js";
import type { Identity } from "./identity.js";
import { createModelAccess } from "./model-access.js";
import type { PeerCertificate } from "./peer.js";

/** The tenants' client certificate names (`tenants.*.mtls`), for a certificate the TLS handshake verified. */
export interface MtlsIdentities {
  /** The identity a verified certificate maps to; undefined: it names no tenant. */
  identify(certificate: PeerCertificate): Identity | undefined;
}

/**
 * Undefined when no tenant lists a certificate name. A URI SAN (e.g. a SPIFFE id) is
 * matched first, exactly; then the subject's common name, exactly. The identity's keyId
 * is what matched: the URI, or "CN=" and the name. The schema refuses one name listed for
 * two tenants, so a certificate maps to at most one tenant per name; a certificate whose
 * URIs name two different tenants maps to none.
 */
export function createMtlsIdentities(tenants: SluiceConfig["tenants"]): MtlsIdentities | undefined {
  const byUri = new Map<string, Identity>();
  const byCommonName = new Map<string, Identity>();
  for (const [tenant, config] of Object.entries(tenants)) {
    if (config.mtls === undefined) continue;
    const models = createModelAccess(config.models);
    for (const uri of config.mtls.uris ?? []) byUri.set(uri, Object.freeze({ tenant, keyId: uri, method: "mtls", models }));
    for (const cn of config.mtls.subjects ?? []) {
      byCommonName.set(cn, Object.freeze({ tenant, keyId: `CN=${cn}`, method: "mtls", models }));
    }
  }
  if (byUri.size === 0 && byCommonName.size === 0) return undefined;
  return {
    identify(certificate) {
      let found: Identity | undefined;
      for (const uri of certificate.uris) {
        const identity = byUri.get(uri);
        if (identity === undefined) continue;
        if (found !== undefined && found.tenant !== identity.tenant) return undefined;
        found ??= identity;
      }
      if (found !== undefined) return found;
      return certificate.subjectCN === undefined ? undefined : byCommonName.get(certificate.subjectCN);
    },
  };
}
