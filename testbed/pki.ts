/**
 * Certificates for one test-bed run: a CA for the API server's serving certificate, a separate CA
 * for client certificates, an admin client certificate and the service-account signing key pair.
 * Everything is generated in memory with WebCrypto (ECDSA P-256), so no `openssl` is needed.
 *
 * @module
 */
// @peculiar/x509 resolves its providers through tsyringe, which needs the Reflect metadata polyfill.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
// A year: a kept dev state (`deno task dev --keep`) goes on using them.
const VALIDITY_MS = 365 * 24 * 3600 * 1000;
/** Backdated so that a clock slightly behind the issuer's does not reject a fresh certificate. */
const BACKDATE_MS = 3600 * 1000;

/** A certificate and its private key, both PEM. */
export interface CertifiedKey {
  certificate: string;
  privateKey: string;
}

/** A certificate authority able to issue further certificates. */
export interface CertificateAuthority extends CertifiedKey {
  readonly keys: CryptoKeyPair;
  readonly cert: x509.X509Certificate;
}

/** What a leaf certificate is for: serving TLS, or authenticating a client. */
export type CertificateUse =
  | { kind: "server"; dnsNames: string[]; ipAddresses: string[] }
  | { kind: "client"; organizations: string[] };

async function newKeys(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

async function publicKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("spki", key), "PUBLIC KEY");
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // a positive integer, as RFC 5280 requires
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + VALIDITY_MS) };
}

/** Creates a self-signed CA. `commonName` appears as its subject, e.g. "omni_kube test CA". */
export async function createCertificateAuthority(
  commonName: string,
): Promise<CertificateAuthority> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: ALGORITHM,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    keys,
    cert,
    certificate: cert.toString("pem"),
    privateKey: await privateKeyPem(keys.privateKey),
  };
}

/** Issues a leaf certificate for `commonName`, signed by `ca`. */
export async function issueCertificate(
  ca: CertificateAuthority,
  commonName: string,
  use: CertificateUse,
): Promise<CertifiedKey> {
  const keys = await newKeys();
  const subject: x509.JsonName = [{ CN: [commonName] }];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  if (use.kind === "server") {
    extensions.push(
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...use.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...use.ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
    );
  } else {
    // Kubernetes reads the user from CN and the groups from O.
    subject.push(...use.organizations.map((o) => ({ O: [o] })));
    extensions.push(
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALGORITHM,
    ...validity(),
    extensions,
  });
  return { certificate: cert.toString("pem"), privateKey: await privateKeyPem(keys.privateKey) };
}

/** A key pair in PEM, for signing service-account tokens. */
export async function createSigningKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  const keys = await newKeys();
  return {
    publicKey: await publicKeyPem(keys.publicKey),
    privateKey: await privateKeyPem(keys.privateKey),
  };
}
