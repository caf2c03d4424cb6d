/**
 * A real etcd and kube-apiserver on 127.0.0.1, on free ports, with TLS from a CA made for the run,
 * token and client-certificate authentication, RBAC and service-account signing keys: the same
 * shape as controller-runtime's envtest, built from source by `testbed/build.sh`.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";
import { createCertificateAuthority, createSigningKeyPair, issueCertificate } from "./pki.ts";

/** A running API server and the credentials to reach it, all as files under the run directory. */
export interface KubeApiServer {
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  /** CA that signed the serving certificate (PEM file). */
  readonly caFile: string;
  /** Bearer token of `admin`, a member of `system:masters`. */
  readonly adminToken: string;
  /** Bearer token of `limited`, who has no RBAC rights beyond discovery. */
  readonly limitedToken: string;
  /** Client certificate and key of `admin-cert`, a member of `system:masters`. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A kubeconfig whose current context is the admin token. */
  readonly kubeconfigFile: string;
  readonly etcdUrl: string;
  readonly processes: readonly ManagedProcess[];
  stop(): Promise<void>;
  /** Stops only kube-apiserver (etcd keeps the data), for fault tests. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port after stopApiServer(). */
  startApiServer(): Promise<void>;
}

const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;

/**
 * Paths of the kube-apiserver and etcd binaries: `$KUBE_APISERVER_BIN` and `$ETCD_BIN` when both are
 * set, else whatever `testbed/build.sh` built or finds cached (its progress goes to our stderr).
 */
export async function testbedBinaries(): Promise<{ kubeApiserver: string; etcd: string }> {
  const kubeApiserver = Deno.env.get("KUBE_APISERVER_BIN");
  const etcd = Deno.env.get("ETCD_BIN");
  if (kubeApiserver && etcd) return { kubeApiserver, etcd };
  const output = await new Deno.Command("bash", {
    args: [BUILD_SCRIPT],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    throw new Error(`${BUILD_SCRIPT} failed (exit ${output.code}); its output is above`);
  }
  const paths = Object.fromEntries(
    new TextDecoder().decode(output.stdout).trim().split("\n").map((line) => line.split("=", 2)),
  );
  return { kubeApiserver: paths.KUBE_APISERVER_BIN, etcd: paths.ETCD_BIN };
}

function randomToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(24)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

async function writeSecret(path: string, content: string): Promise<string> {
  await Deno.writeTextFile(path, content, { mode: 0o600 });
  return path;
}

/** A kubeconfig (JSON is valid YAML, and kubectl reads it) for one token-authenticated user. */
export function kubeconfigFor(server: string, caFile: string, user: string, token: string) {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "testbed", cluster: { server, "certificate-authority": caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: `${user}@testbed`, context: { cluster: "testbed", user } }],
    "current-context": `${user}@testbed`,
  };
}

async function startEtcd(
  binary: string,
  dir: string,
): Promise<{ process: ManagedProcess; url: string }> {
  const clientPort = freePort();
  const peerPort = freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const process = await spawnProcess("etcd", binary, {
    args: [
      "--name=testbed",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=testbed=${peerUrl}`,
      "--unsafe-no-fsync", // throwaway data: durability buys nothing, fsync costs seconds
      "--log-level=warn",
    ],
    logFile: join(dir, "etcd.log"),
  });
  await waitUntilReady(process, "healthy", async () => {
    const response = await fetch(`${url}/health`);
    const body = await response.json();
    return body.health === "true";
  }, { timeoutMs: 60_000 });
  return { process, url };
}

/**
 * Starts etcd and kube-apiserver with their state under `dir` (which the caller removes), and waits
 * until `/readyz` answers and namespace `default` exists.
 */
export async function startKubeApiServer(dir: string): Promise<KubeApiServer> {
  const binaries = await testbedBinaries();
  const pkiDir = join(dir, "pki");
  await Deno.mkdir(pkiDir, { mode: 0o700 });

  const [serverCa, clientCa, serviceAccountKeys] = await Promise.all([
    createCertificateAuthority("omni_kube testbed server CA"),
    createCertificateAuthority("omni_kube testbed client CA"),
    createSigningKeyPair(),
  ]);
  const serving = await issueCertificate(serverCa, "kube-apiserver", {
    kind: "server",
    dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    ipAddresses: ["127.0.0.1"],
  });
  const adminClient = await issueCertificate(clientCa, "admin-cert", {
    kind: "client",
    organizations: ["system:masters"],
  });
  const adminToken = randomToken();
  const limitedToken = randomToken();

  const files = {
    caFile: await writeSecret(join(pkiDir, "ca.crt"), serverCa.certificate),
    servingCert: await writeSecret(join(pkiDir, "apiserver.crt"), serving.certificate),
    servingKey: await writeSecret(join(pkiDir, "apiserver.key"), serving.privateKey),
    clientCaFile: await writeSecret(join(pkiDir, "client-ca.crt"), clientCa.certificate),
    clientCertFile: await writeSecret(join(pkiDir, "admin-cert.crt"), adminClient.certificate),
    clientKeyFile: await writeSecret(join(pkiDir, "admin-cert.key"), adminClient.privateKey),
    serviceAccountPublic: await writeSecret(join(pkiDir, "sa.pub"), serviceAccountKeys.publicKey),
    serviceAccountPrivate: await writeSecret(join(pkiDir, "sa.key"), serviceAccountKeys.privateKey),
    // token,user,uid,"group1,group2"
    tokens: await writeSecret(
      join(pkiDir, "tokens.csv"),
      `${adminToken},admin,admin-uid,"system:masters"\n${limitedToken},limited,limited-uid\n`,
    ),
  };

  const etcd = await startEtcd(binaries.etcd, dir);
  const port = freePort();
  const server = `https://127.0.0.1:${port}`;
  const args = [
    `--etcd-servers=${etcd.url}`,
    `--cert-dir=${pkiDir}`,
    `--tls-cert-file=${files.servingCert}`,
    `--tls-private-key-file=${files.servingKey}`,
    `--secure-port=${port}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--authorization-mode=RBAC",
    "--disable-admission-plugins=ServiceAccount",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${files.serviceAccountPublic}`,
    `--service-account-signing-key-file=${files.serviceAccountPrivate}`,
    `--client-ca-file=${files.clientCaFile}`,
    `--token-auth-file=${files.tokens}`,
    "--allow-privileged=true",
    "--v=1",
  ];
  const launch = async () => {
    const process = await spawnProcess("kube-apiserver", binaries.kubeApiserver, {
      args,
      logFile: join(dir, "kube-apiserver.log"),
    });
    using http = Deno.createHttpClient({ caCerts: [serverCa.certificate] });
    const get = (path: string) =>
      fetch(`${server}${path}`, {
        client: http,
        headers: { authorization: `Bearer ${adminToken}` },
      });
    try {
      await waitUntilReady(process, "/readyz ok", async () => {
        const response = await get("/readyz");
        await response.body?.cancel();
        return response.ok;
      }, { timeoutMs: 180_000, intervalMs: 250 });
      await waitUntilReady(process, "namespace default exists", async () => {
        const response = await get("/api/v1/namespaces/default");
        await response.body?.cancel();
        return response.ok;
      }, { timeoutMs: 60_000, intervalMs: 250 });
    } catch (error) {
      await process.stop("SIGTERM", 10_000);
      throw error;
    }
    return process;
  };
  let apiserver: ManagedProcess | undefined;
  const stop = async () => {
    await apiserver?.stop("SIGTERM", 10_000);
    await etcd.process.stop("SIGTERM", 10_000);
  };
  try {
    apiserver = await launch();
  } catch (error) {
    await stop();
    throw error;
  }

  const kubeconfigFile = await writeSecret(
    join(dir, "kubeconfig"),
    JSON.stringify(kubeconfigFor(server, files.caFile, "admin", adminToken), null, 2),
  );
  return {
    server,
    caFile: files.caFile,
    adminToken,
    limitedToken,
    clientCertFile: files.clientCertFile,
    clientKeyFile: files.clientKeyFile,
    kubeconfigFile,
    etcdUrl: etcd.url,
    get processes() {
      return [etcd.process, apiserver!];
    },
    stop,
    stopApiServer: () => apiserver!.stop("SIGTERM", 10_000),
    async startApiServer() {
      apiserver = await launch();
    },
  };
}
