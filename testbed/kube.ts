/**
 * A real Kubernetes control plane on 127.0.0.1, on free ports: etcd and kube-apiserver with TLS
 * from a CA made for the run, token and client-certificate authentication, RBAC and
 * service-account signing keys (the shape of controller-runtime's envtest), and behind them
 * kube-controller-manager, kube-scheduler and KWOK's simulated nodes, so that objects change as in
 * a real cluster. Built from source by `testbed/build.sh`. Further clusters ("siblings") can be
 * served from the same etcd: each an API server of its own, under its own etcd key prefix, with
 * its own credentials and nothing behind it.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";
import { createCertificateAuthority, createSigningKeyPair, issueCertificate } from "./pki.ts";
import { startControllerManager, startScheduler } from "./controllers.ts";
import { startKwok } from "./kwok.ts";

/** Where an API server listens and the credentials to reach it, all as files under its directory. */
export interface KubeAccess {
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
}

/**
 * A further cluster: a kube-apiserver of its own on the cluster's etcd, under its own key prefix,
 * so that none of its objects is the cluster's. Nothing runs behind it: its objects are stored and
 * never acted on (no Pod is scheduled, a deleted namespace stays Terminating).
 */
export interface SiblingCluster extends KubeAccess {
  readonly name: string;
  readonly etcdPrefix: string;
  /** Its directory: credentials under `pki/`, and the API server's log. */
  readonly dir: string;
  readonly process: ManagedProcess;
}

/** A running cluster and the credentials to reach it, all as files under the run directory. */
export interface KubeCluster extends KubeAccess {
  /** A kubeconfig whose current context is the admin token. */
  readonly kubeconfigFile: string;
  readonly etcdUrl: string;
  /** The Kubernetes release `testbed/build.sh` was asked for, e.g. `1.37.2` (unknown for `*_BIN`). */
  readonly version?: string;
  /** The further clusters served from the same etcd, in the order they were asked for. */
  readonly siblings: readonly SiblingCluster[];
  /**
   * Every process of the cluster: etcd, this cluster's kube-apiserver, the siblings' API servers,
   * then what runs behind this cluster's.
   */
  readonly processes: readonly ManagedProcess[];
  stop(): Promise<void>;
  /** Stops only kube-apiserver (etcd keeps the data), for fault tests. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port after stopApiServer(). */
  startApiServer(): Promise<void>;
}

/** A further cluster to serve from the same etcd. */
export interface SiblingOptions {
  /** Lower-case letters, digits and `-`; its state goes to `cluster-NAME` in the run directory. */
  name: string;
  /** Its etcd key prefix, e.g. `/cluster-b`; this cluster's is the API server's, `/registry`. */
  etcdPrefix: string;
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
  /** Further clusters, started beside this one's API server (default none). */
  siblings?: readonly SiblingOptions[];
  /**
   * An OS group that may read the CA certificates and the kubeconfig (not the keys or the token
   * files): the database server's, when it runs as another user, so that
   * `omni_kube.load_kubeconfig()` can read them. The caller makes `dir` itself searchable.
   */
  readableBy?: number;
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

/**
 * Lets the OS group `gid` read `files` and search (not list) `directories`; nothing when `gid` is
 * undefined.
 *
 * This is for the database server, which as root runs as an unprivileged user (`nobody` by
 * default) and must read a kubeconfig and its CA file for `omni_kube.load_kubeconfig()`. The
 * files stay ours, mode 640, group the server's: it can read them, but neither rewrite them (a CA
 * file it rewrote would make the worker and the tests trust a server of its choosing) nor widen
 * their mode, as it could as their owner. The directories are 710, so it opens only files it
 * knows the name of and may read; private keys and token files keep mode 600 and stay ours alone.
 * Other users get nothing. Copies for the server would be no safer (they hold the same token) and
 * would leave two files to keep in step.
 */
async function grantRead(
  gid: number | undefined,
  { directories = [], files = [] }: { directories?: string[]; files?: string[] },
): Promise<void> {
  if (gid === undefined) return;
  for (const [paths, mode] of [[directories, 0o710], [files, 0o640]] as const) {
    for (const path of paths) {
      await Deno.chown(path, null, gid);
      await Deno.chmod(path, mode);
    }
  }
}

/**
 * Writes a kubeconfig as JSON (valid YAML, which kubectl reads): readable by us alone, and by the
 * OS group `readableBy` when given (see grantRead()).
 */
export async function writeKubeconfig(
  path: string,
  config: Record<string, unknown>,
  readableBy?: number,
): Promise<string> {
  await writeSecret(path, JSON.stringify(config, null, 2));
  await grantRead(readableBy, { files: [path] });
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

/** One context of {@linkcode kubeconfigForContexts}: a cluster, and whom to call it as. */
export interface KubeconfigContext {
  /** The context's name, and its cluster's. */
  name: string;
  server: string;
  caFile: string;
  /** The user; its entry is named `USER@NAME`, so that each context has its own. */
  user: string;
  token: string;
}

/** A kubeconfig with one context per entry; the current one is `current`, else the first. */
export function kubeconfigForContexts(
  contexts: readonly KubeconfigContext[],
  current: string = contexts[0].name,
) {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: contexts.map(({ name, server, caFile }) => ({
      name,
      cluster: { server, "certificate-authority": caFile },
    })),
    users: contexts.map(({ name, user, token }) => ({ name: `${user}@${name}`, user: { token } })),
    contexts: contexts.map(({ name, user }) => ({
      name,
      context: { cluster: name, user: `${user}@${name}` },
    })),
    "current-context": current,
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
async function readOrCreateCredentials(pkiDir: string, reuse: boolean): Promise<Credentials> {
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

/**
 * The credentials in `pkiDir`, made or (with `reuse`) read; the CA certificate readable by the
 * group `readableBy`. Granted at every start, so that a kept directory has it whatever made it.
 */
async function loadOrCreateCredentials(
  pkiDir: string,
  reuse: boolean,
  readableBy: number | undefined,
): Promise<Credentials> {
  const credentials = await readOrCreateCredentials(pkiDir, reuse);
  await grantRead(readableBy, { directories: [pkiDir], files: [credentials.files.caFile] });
  return credentials;
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

/** What differs between the API servers of the test bed. */
interface ApiServerSpec {
  /** The process's name, e.g. `kube-apiserver-b`. */
  name: string;
  binary: string;
  /** Where its log goes. */
  dir: string;
  etcdUrl: string;
  /** Its etcd key prefix; undefined: the API server's own, `/registry`. */
  etcdPrefix?: string;
  credentials: Credentials;
  /** kube-controller-manager runs behind it (which creates the service accounts). */
  controllers: boolean;
  /** KWOK's kubelets serve pod logs to it. */
  kubelets: boolean;
}

/** An API server's address, and how to start it (again, on the same port) and ask it things. */
interface ApiServer {
  server: string;
  caCertificate: string;
  /** Starts it and waits until `/readyz` answers and namespace `default` exists. */
  launch(): Promise<ManagedProcess>;
  /** Whether `path` answers 2xx to the admin. */
  answers(path: string): Promise<boolean>;
}

async function apiServer(spec: ApiServerSpec): Promise<ApiServer> {
  const { files, adminToken } = spec.credentials;
  const caCertificate = await Deno.readTextFile(files.caFile);
  const port = freePort();
  const server = `https://127.0.0.1:${port}`;
  const args = [
    `--etcd-servers=${spec.etcdUrl}`,
    ...(spec.etcdPrefix === undefined ? [] : [`--etcd-prefix=${spec.etcdPrefix}`]),
    `--cert-dir=${dirname(files.caFile)}`,
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
    ...(spec.kubelets
      ? [
        `--kubelet-certificate-authority=${files.caFile}`,
        `--kubelet-client-certificate=${files.clientCertFile}`,
        `--kubelet-client-key=${files.clientKeyFile}`,
        "--kubelet-preferred-address-types=InternalIP",
      ]
      : []),
    "--allow-privileged=true",
    // PodTemplates skip the watch cache, so a watch on them is served by etcd and a test can expire
    // a resourceVersion at once by compacting etcd (the API server compacts every five minutes; a
    // young cluster's watch cache still holds every version since it started).
    "--watch-cache-sizes=podtemplates#0",
    "--v=1",
    // Without the controller manager no service account is ever created, and this admission
    // plugin would refuse every Pod.
    ...(spec.controllers ? [] : ["--disable-admission-plugins=ServiceAccount"]),
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
    const process = await spawnProcess(spec.name, spec.binary, {
      args,
      logFile: join(spec.dir, "kube-apiserver.log"),
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
  return { server, caCertificate, launch, answers };
}

const SIBLING_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function checkSiblings(siblings: readonly SiblingOptions[]): void {
  const names = new Set<string>();
  const prefixes = new Set<string>(["/registry"]);
  for (const { name, etcdPrefix } of siblings) {
    if (!SIBLING_NAME.test(name) || names.has(name)) {
      throw new Error(`sibling cluster "${name}": not a name of its own (a-z, 0-9 and -)`);
    }
    const prefix = etcdPrefix.replace(/\/+$/, "");
    if (!prefix.startsWith("/") || prefixes.has(prefix)) {
      throw new Error(
        `sibling cluster "${name}": etcd prefix "${etcdPrefix}" is not an absolute prefix of ` +
          "its own",
      );
    }
    names.add(name);
    prefixes.add(prefix);
  }
}

/** Rejections of `results`, as one error: the only one, or all of them. */
function failureOf(results: readonly PromiseSettledResult<unknown>[]): unknown {
  const reasons = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
  if (reasons.length <= 1) return reasons[0];
  return new AggregateError(reasons, reasons.map(String).join("; "));
}

/**
 * Starts etcd and kube-apiserver with their state under `dir` (which the caller removes), waits
 * until `/readyz` answers and namespace `default` exists, then (unless `controllers: false`)
 * starts the controllers, the scheduler and KWOK, and waits until the nodes are Ready and
 * namespace `default` has its service account. The siblings' API servers start beside this
 * cluster's, once etcd serves, and are ready when namespace `default` exists in each.
 */
export async function startKubeCluster(
  dir: string,
  { controllers = true, reuse = false, siblings = [], readableBy }: KubeClusterOptions = {},
): Promise<KubeCluster> {
  checkSiblings(siblings);
  const binaries = await testbedBinaries();
  const siblingDirs = siblings.map(({ name }) => join(dir, `cluster-${name}`));
  // The credentials are made while etcd starts: both take a moment, mostly waiting.
  const etcdStarting = startEtcd(binaries.etcd, dir);
  const credentialsMade = Promise.all([
    loadOrCreateCredentials(join(dir, "pki"), reuse, readableBy),
    ...siblingDirs.map(async (siblingDir) => {
      await Deno.mkdir(siblingDir, { mode: 0o700, recursive: true });
      await grantRead(readableBy, { directories: [siblingDir] });
      return await loadOrCreateCredentials(join(siblingDir, "pki"), reuse, readableBy);
    }),
  ]);
  const prepared = await Promise.allSettled([etcdStarting, credentialsMade]);
  const [etcdStarted, credentialsRead] = prepared;
  if (etcdStarted.status === "rejected" || credentialsRead.status === "rejected") {
    if (etcdStarted.status === "fulfilled") await etcdStarted.value.process.stop("SIGTERM", 10_000);
    throw failureOf(prepared);
  }
  const etcd = etcdStarted.value;
  const [own, ...siblingCredentials] = credentialsRead.value;
  const { adminToken, limitedToken, files } = own;

  let main: ApiServer;
  let siblingServers: ApiServer[];
  try {
    [main, ...siblingServers] = await Promise.all([
      apiServer({
        name: "kube-apiserver",
        binary: binaries.kubeApiserver,
        dir,
        etcdUrl: etcd.url,
        credentials: own,
        controllers,
        kubelets: true,
      }),
      ...siblings.map(({ name, etcdPrefix }, i) =>
        apiServer({
          name: `kube-apiserver-${name}`,
          binary: binaries.kubeApiserver,
          dir: siblingDirs[i],
          etcdUrl: etcd.url,
          etcdPrefix,
          credentials: siblingCredentials[i],
          controllers: false,
          kubelets: false,
        })
      ),
    ]);
  } catch (error) {
    await etcd.process.stop("SIGTERM", 10_000);
    throw error;
  }
  const { server, caCertificate } = main;

  let apiserver: ManagedProcess | undefined;
  const siblingProcesses: (ManagedProcess | undefined)[] = siblings.map(() => undefined);
  const behind: ManagedProcess[] = [];
  const stop = async () => {
    await Promise.all(behind.map((process) => process.stop("SIGTERM", 10_000)));
    await Promise.all(
      [apiserver, ...siblingProcesses].map((process) => process?.stop("SIGTERM", 10_000)),
    );
    await etcd.process.stop("SIGTERM", 10_000);
  };
  const kubeconfigFile = join(dir, "kubeconfig");
  const startOwn = async () => {
    await writeKubeconfig(
      kubeconfigFile,
      kubeconfigFor(server, files.caFile, "admin", adminToken),
      readableBy,
    );
    apiserver = await main.launch();
    if (!controllers) return;
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
      () => main.answers("/api/v1/namespaces/default/serviceaccounts/default"),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  };
  // The siblings' API servers start with this cluster's, not after its controllers: on a small
  // machine they share the CPU, but the test bed is ready sooner than one after the other.
  const started = await Promise.allSettled([
    startOwn(),
    ...siblingServers.map(async (sibling, i) => {
      siblingProcesses[i] = await sibling.launch();
    }),
  ]);
  const failure = failureOf(started);
  if (failure !== undefined) {
    await stop();
    throw failure;
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
    siblings: siblings.map(({ name, etcdPrefix }, i) => ({
      name,
      etcdPrefix,
      dir: siblingDirs[i],
      server: siblingServers[i].server,
      caFile: siblingCredentials[i].files.caFile,
      adminToken: siblingCredentials[i].adminToken,
      limitedToken: siblingCredentials[i].limitedToken,
      clientCertFile: siblingCredentials[i].files.clientCertFile,
      clientKeyFile: siblingCredentials[i].files.clientKeyFile,
      process: siblingProcesses[i]!,
    })),
    get processes() {
      return [etcd.process, apiserver!, ...siblingProcesses.map((p) => p!), ...behind];
    },
    stop,
    stopApiServer: () => apiserver!.stop("SIGTERM", 10_000),
    async startApiServer() {
      apiserver = await main.launch();
    },
  };
}
