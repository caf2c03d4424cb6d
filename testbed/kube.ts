/**
 * A real Kubernetes control plane on 127.0.0.1, on free ports: etcd and kube-apiserver with TLS
 * from a CA made for the run, token and client-certificate authentication, RBAC and
 * service-account signing keys (the shape of controller-runtime's envtest), and behind them
 * kube-controller-manager, kube-scheduler and KWOK's simulated nodes, so that objects change as in
 * a real cluster. Built from source by `testbed/build.sh`.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";
import { createCertificateAuthority, createSigningKeyPair, issueCertificate } from "./pki.ts";
import { startControllerManager, startScheduler } from "./controllers.ts";
import { startKwok } from "./kwok.ts";

/** A running cluster and the credentials to reach it, all as files under the run directory. */
export interface KubeCluster {
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  /** CA that signed the serving certificates (PEM file). */
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
  /** The Kubernetes release `testbed/build.sh` was asked for, e.g. `1.37.2` (unknown for `*_BIN`). */
  readonly version?: string;
  /** Every process of the cluster, etcd and kube-apiserver first. */
  readonly processes: readonly ManagedProcess[];
  stop(): Promise<void>;
  /** Stops only kube-apiserver (etcd keeps the data), for fault tests. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port after stopApiServer(). */
  startApiServer(): Promise<void>;
}

/** How to start a cluster. */
export interface KubeClusterOptions {
  /**
   * Run kube-controller-manager, kube-scheduler and KWOK's nodes (default true). Without them the
   * API server stores objects and nothing ever acts on them.
   */
  controllers?: boolean;
  /** Reuse the credentials and etcd data that an earlier run left in `dir` (default false). */
  reuse?: boolean;
}

/** Paths of the binaries the cluster runs. */
export interface KubeBinaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  etcd: string;
  kwok: string;
  /** The Kubernetes release, when `testbed/build.sh` built them. */
  version?: string;
}

const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;

/** The variable naming each binary, in the environment and in what `testbed/build.sh` prints. */
const BINARY_VARIABLES: Record<Exclude<keyof KubeBinaries, "version">, string> = {
  kubeApiserver: "KUBE_APISERVER_BIN",
  kubeControllerManager: "KUBE_CONTROLLER_MANAGER_BIN",
  kubeScheduler: "KUBE_SCHEDULER_BIN",
  etcd: "ETCD_BIN",
  kwok: "KWOK_BIN",
};

/** The environment variables that name the cluster's binaries. */
export const KUBE_BINARY_VARIABLES: readonly string[] = Object.values(BINARY_VARIABLES);

function binariesFrom(lookup: (variable: string) => string | undefined): KubeBinaries | undefined {
  const entries = Object.entries(BINARY_VARIABLES).map((
    [key, variable],
  ) => [key, lookup(variable)]);
  if (entries.some(([, path]) => !path)) return undefined;
  return Object.fromEntries(entries) as KubeBinaries;
}

/**
 * Paths of the cluster's binaries: the `*_BIN` environment variables when all five are set, else
 * whatever `testbed/build.sh` built or finds cached (its progress goes to our stderr).
 */
export async function testbedBinaries(): Promise<KubeBinaries> {
  const fromEnv = binariesFrom((variable) => Deno.env.get(variable));
  if (fromEnv) return fromEnv;
  const output = await new Deno.Command("bash", {
    args: [BUILD_SCRIPT],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) {
    throw new Error(`${BUILD_SCRIPT} failed (exit ${output.code}); its output is above`);
  }
  const printed = new Map(
    new TextDecoder().decode(output.stdout).trim().split("\n").map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)] as const;
    }),
  );
  const binaries = binariesFrom((variable) => printed.get(variable));
  if (!binaries) throw new Error(`${BUILD_SCRIPT} did not print the path of every binary`);
  return { ...binaries, version: printed.get("KUBE_VERSION") };
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

/** The files of the cluster's certificates, keys and tokens, by their names under `pki/`. */
const PKI_FILES = {
  caFile: "ca.crt",
  servingCert: "serving.crt",
  servingKey: "serving.key",
  clientCaFile: "client-ca.crt",
  clientCaKey: "client-ca.key",
  clientCertFile: "admin-cert.crt",
  clientKeyFile: "admin-cert.key",
  serviceAccountPublic: "sa.pub",
  serviceAccountPrivate: "sa.key",
  tokens: "tokens.csv",
} as const;

/** The two tokens, and the paths of the files (under `pki/`, so a kept directory may move). */
interface Credentials {
  adminToken: string;
  limitedToken: string;
  files: Record<keyof typeof PKI_FILES, string>;
}

function pkiPaths(pkiDir: string): Credentials["files"] {
  return Object.fromEntries(
    Object.entries(PKI_FILES).map(([key, name]) => [key, join(pkiDir, name)]),
  ) as Credentials["files"];
}

/**
 * Makes the credentials, or with `reuse` reads the ones an earlier run wrote (a kept etcd holds
 * service-account tokens and objects signed or owned under them, so they must not change).
 */
async function loadOrCreateCredentials(pkiDir: string, reuse: boolean): Promise<Credentials> {
  const record = join(pkiDir, "tokens.json");
  const files = pkiPaths(pkiDir);
  if (reuse) {
    try {
      const { adminToken, limitedToken } = JSON.parse(await Deno.readTextFile(record));
      return { adminToken, limitedToken, files };
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  await Deno.mkdir(pkiDir, { mode: 0o700, recursive: true });
  const [serverCa, clientCa, serviceAccountKeys] = await Promise.all([
    createCertificateAuthority("omni_kube testbed server CA"),
    createCertificateAuthority("omni_kube testbed client CA"),
    createSigningKeyPair(),
  ]);
  // One serving certificate for every component: all of them listen on 127.0.0.1.
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
  const contents: Record<keyof typeof PKI_FILES, string> = {
    caFile: serverCa.certificate,
    servingCert: serving.certificate,
    servingKey: serving.privateKey,
    clientCaFile: clientCa.certificate,
    clientCaKey: clientCa.privateKey,
    clientCertFile: adminClient.certificate,
    clientKeyFile: adminClient.privateKey,
    serviceAccountPublic: serviceAccountKeys.publicKey,
    serviceAccountPrivate: serviceAccountKeys.privateKey,
    // token,user,uid,"group1,group2"
    tokens: `${adminToken},admin,admin-uid,"system:masters"\n${limitedToken},limited,limited-uid\n`,
  };
  for (const [key, content] of Object.entries(contents)) {
    await writeSecret(files[key as keyof typeof PKI_FILES], content);
  }
  // Written last: its presence says the files above are complete.
  await writeSecret(record, JSON.stringify({ adminToken, limitedToken }, null, 2));
  return { adminToken, limitedToken, files };
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
      "--unsafe-no-fsync", // test data: durability buys nothing, fsync costs seconds
      "--log-level=warn",
    ],
    logFile: join(dir, "etcd.log"),
  });
  try {
    await waitUntilReady(process, "healthy", async () => {
      const response = await fetch(`${url}/health`);
      const body = await response.json();
      return body.health === "true";
    }, { timeoutMs: 60_000 });
  } catch (error) {
    await process.stop("SIGTERM", 10_000);
    throw error;
  }
  return { process, url };
}

/**
 * Starts etcd and kube-apiserver with their state under `dir` (which the caller removes), waits
 * until `/readyz` answers and namespace `default` exists, then (unless `controllers: false`)
 * starts the controllers, the scheduler and KWOK, and waits until the nodes are Ready and
 * namespace `default` has its service account.
 */
export async function startKubeCluster(
  dir: string,
  { controllers = true, reuse = false }: KubeClusterOptions = {},
): Promise<KubeCluster> {
  const binaries = await testbedBinaries();
  const { adminToken, limitedToken, files } = await loadOrCreateCredentials(
    join(dir, "pki"),
    reuse,
  );
  const caCertificate = await Deno.readTextFile(files.caFile);

  const etcd = await startEtcd(binaries.etcd, dir);
  const port = freePort();
  const server = `https://127.0.0.1:${port}`;
  const args = [
    `--etcd-servers=${etcd.url}`,
    `--cert-dir=${join(dir, "pki")}`,
    `--tls-cert-file=${files.servingCert}`,
    `--tls-private-key-file=${files.servingKey}`,
    `--secure-port=${port}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    // The endpoint reconciler refuses a loopback address, and no pod could reach it anyway.
    "--endpoint-reconciler-type=none",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--authorization-mode=Node,RBAC",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${files.serviceAccountPublic}`,
    `--service-account-signing-key-file=${files.serviceAccountPrivate}`,
    `--client-ca-file=${files.clientCaFile}`,
    `--token-auth-file=${files.tokens}`,
    // Pod logs come from KWOK's kubelet endpoint, whose certificate the run's CA signed.
    `--kubelet-certificate-authority=${files.caFile}`,
    `--kubelet-client-certificate=${files.clientCertFile}`,
    `--kubelet-client-key=${files.clientKeyFile}`,
    "--kubelet-preferred-address-types=InternalIP",
    "--allow-privileged=true",
    // PodTemplates skip the watch cache, so a watch on them is served by etcd and a test can expire
    // a resourceVersion at once by compacting etcd (the API server compacts every five minutes; a
    // young cluster's watch cache still holds every version since it started).
    "--watch-cache-sizes=podtemplates#0",
    "--v=1",
    // Without the controller manager no service account is ever created, and this admission
    // plugin would refuse every Pod.
    ...(controllers ? [] : ["--disable-admission-plugins=ServiceAccount"]),
  ];
  const answers = async (path: string) => {
    using http = Deno.createHttpClient({ caCerts: [caCertificate] });
    const response = await fetch(`${server}${path}`, {
      client: http,
      headers: { authorization: `Bearer ${adminToken}` },
    });
    await response.body?.cancel();
    return response.ok;
  };
  const launch = async () => {
    const process = await spawnProcess("kube-apiserver", binaries.kubeApiserver, {
      args,
      logFile: join(dir, "kube-apiserver.log"),
    });
    try {
      await waitUntilReady(process, "/readyz ok", () => answers("/readyz"), {
        timeoutMs: 180_000,
        intervalMs: 250,
      });
      await waitUntilReady(
        process,
        "namespace default exists",
        () => answers("/api/v1/namespaces/default"),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
    } catch (error) {
      await process.stop("SIGTERM", 10_000);
      throw error;
    }
    return process;
  };

  let apiserver: ManagedProcess | undefined;
  const behind: ManagedProcess[] = [];
  const stop = async () => {
    await Promise.all(behind.map((process) => process.stop("SIGTERM", 10_000)));
    await apiserver?.stop("SIGTERM", 10_000);
    await etcd.process.stop("SIGTERM", 10_000);
  };
  const kubeconfigFile = join(dir, "kubeconfig");
  try {
    await writeSecret(
      kubeconfigFile,
      JSON.stringify(kubeconfigFor(server, files.caFile, "admin", adminToken), null, 2),
    );
    apiserver = await launch();
    if (controllers) {
      const component = {
        dir,
        kubeconfigFile,
        caCertificate,
        servingCertFile: files.servingCert,
        servingKeyFile: files.servingKey,
      };
      const started = await Promise.allSettled([
        startControllerManager(binaries.kubeControllerManager, component, {
          serviceAccountPrivateKeyFile: files.serviceAccountPrivate,
          rootCaFile: files.caFile,
          clusterSigningCertFile: files.clientCaFile,
          clusterSigningKeyFile: files.clientCaKey,
        }),
        startScheduler(binaries.kubeScheduler, component),
        startKwok(binaries.kwok, { ...component, server, adminToken }),
      ]);
      for (const result of started) if (result.status === "fulfilled") behind.push(result.value);
      const failed = started.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
      if (failed.length > 0) throw new AggregateError(failed, failed.map(String).join("; "));
      await waitUntilReady(
        behind[0],
        "namespace default has its service account",
        () => answers("/api/v1/namespaces/default/serviceaccounts/default"),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    server,
    caFile: files.caFile,
    adminToken,
    limitedToken,
    clientCertFile: files.clientCertFile,
    clientKeyFile: files.clientKeyFile,
    kubeconfigFile,
    etcdUrl: etcd.url,
    version: binaries.version,
    get processes() {
      return [etcd.process, apiserver!, ...behind];
    },
    stop,
    stopApiServer: () => apiserver!.stop("SIGTERM", 10_000),
    async startApiServer() {
      apiserver = await launch();
    },
  };
}
