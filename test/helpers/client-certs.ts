import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM certificate and its key, as files. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A test certificate authority that signs client certificates. */
export interface TestCa extends CertFiles {
  /**
   * A one-day client certificate signed by this CA, with subject CN `commonName` and, when
   * given, a URI subject alternative name (e.g. a SPIFFE id).
   */
  issueClient(name: string, commonName: string, uri?: string): CertFiles;
  /** Removes every file. */
  remove(): void;
}

const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** A fresh one-day P-256 CA (CN `commonName`) in a temporary directory; openssl must be installed. */
export function createTestCa(commonName: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "sluice-ca-"));
  const certFile = join(dir, "ca.pem");
  const keyFile = join(dir, "ca.key");
  const openssl = (args: string[]): void => {
    execFileSync("openssl", args, { stdio: "ignore" });
  };
  openssl(["req", "-x509", ...ec, "-subj", `/CN=${commonName}`, "-days", "1", "-keyout", keyFile, "-out", certFile]);
  return {
    certFile,
    keyFile,
    issueClient(name, cn, uri) {
      const clientKey = join(dir, `${name}.key`);
      const clientCert = join(dir, `${name}.pem`);
      const csr = join(dir, `${name}.csr`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        ["basicConstraints=CA:FALSE", "extendedKeyUsage=clientAuth", ...(uri === undefined ? [] : [`subjectAltName=URI:${uri}`])]
          .map((line) => `${line}\n`)
          .join(""),
      );
      openssl(["req", "-new", ...ec, "-subj", `/CN=${cn}`, "-keyout", clientKey, "-out", csr]);
      openssl([
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        certFile,
        "-CAkey",
        keyFile,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        ext,
        "-out",
        clientCert,
      ]);
      return { certFile: clientCert, keyFile: clientKey };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
