/**
 * What the tests of kubeconfigs, credentials and exec plugins share: PEM stand-ins, a kubeconfig
 * of one context, and temporary directories.
 *
 * @module
 */

/** PEM-shaped stand-ins: the code under test passes them on without parsing them. */
export const CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
export const CERT = "-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n";
export const KEY = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n";

/** A kubeconfig with cluster "c", user "u" and the current context "main" joining them. */
export function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>) {
  return {
    apiVersion: "v1",
    kind: "Config",
    "current-context": "main",
    clusters: [{ name: "c", cluster }],
    users: [{ name: "u", user }],
    contexts: [{ name: "main", context: { cluster: "c", user: "u" } }],
  };
}

/** A temporary directory, removed when the test's `await using` ends. */
export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
