/**
 * A minimal HTTPS endpoint that answers every request at once with the same small JSON object, so
 * that a benchmark against it shows the bridge's own ceiling rather than the API server's. It runs
 * as a process of its own (`deno run --allow-net --allow-read bench/endpoint.ts PORT CERT KEY`) so
 * that it shares no event loop with the worker or the benchmark's clients.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCertificateAuthority, issueCertificate } from "../testbed/pki.ts";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "../testbed/process.ts";

/** About the size of a Namespace object, like the API server's answer in the same case. */
export const ENDPOINT_BODY = JSON.stringify({
  kind: "Namespace",
  apiVersion: "v1",
  metadata: {
    name: "bench",
    uid: "6c2e7a4e-1f0b-4a0c-9b7e-3d2f7e1c0a11",
    resourceVersion: "1",
    creationTimestamp: "2025-01-01T00:00:00Z",
    labels: { "kubernetes.io/metadata.name": "bench" },
    managedFields: [{
      manager: "kube-apiserver",
      operation: "Update",
      apiVersion: "v1",
      time: "2025-01-01T00:00:00Z",
      fieldsType: "FieldsV1",
      fieldsV1: { "f:metadata": { "f:labels": { ".": {}, "f:kubernetes.io/metadata.name": {} } } },
    }],
  },
  spec: { finalizers: ["kubernetes"] },
  status: { phase: "Active" },
});

/** A running endpoint: its URL and the CA (PEM) that signed its certificate. */
export interface Endpoint {
  url: string;
  caCert: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts the endpoint as a child process with a certificate from a CA made for the run. */
export async function startEndpoint(dir: string): Promise<Endpoint> {
  const ca = await createCertificateAuthority("omni_kube bench CA");
  const leaf = await issueCertificate(ca, "localhost", {
    kind: "server",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
  });
  const certFile = join(dir, "endpoint.crt");
  const keyFile = join(dir, "endpoint.key");
  await Deno.writeTextFile(certFile, leaf.certificate);
  await Deno.writeTextFile(keyFile, leaf.privateKey, { mode: 0o600 });
  const port = freePort();
  const process = await spawnProcess("endpoint", Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      fileURLToPath(import.meta.url),
      String(port),
      certFile,
      keyFile,
    ],
    logFile: join(dir, "endpoint.log"),
  });
  const url = `https://127.0.0.1:${port}`;
  const client = Deno.createHttpClient({ caCerts: [ca.certificate] });
  try {
    await waitUntilReady(process, "serving", async () => {
      const response = await fetch(url, { client });
      await response.body?.cancel();
      return response.ok;
    }, { timeoutMs: 30_000 });
  } catch (error) {
    await process.stop();
    throw error;
  } finally {
    client.close();
  }
  return { url, caCert: ca.certificate, process, stop: () => process.stop() };
}

if (import.meta.main) {
  const [port, certFile, keyFile] = Deno.args;
  const headers = { "content-type": "application/json" };
  Deno.serve({
    hostname: "127.0.0.1",
    port: Number(port),
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    onListen: () => {},
  }, () => new Response(ENDPOINT_BODY, { headers }));
}
