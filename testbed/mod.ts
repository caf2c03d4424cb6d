/**
 * The test bed: a PostgreSQL cluster and a real Kubernetes control plane (etcd, kube-apiserver,
 * controllers, scheduler and KWOK's simulated nodes) on loopback, and beside it a second cluster,
 * "b" (an API server of its own on the same etcd, nothing behind it), started together, described
 * by the environment variables that `deno task dev` writes to `.dev/env` and that `deno task test`
 * passes to the test files. Throwaway by default; with `stateDir` its state is kept there.
 *
 * ```ts
 * await using testbed = await startTestbed();
 * console.log(testbed.env.DATABASE_URL, testbed.env.KUBE_SERVER);
 * ```
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  type KubeCluster,
  kubeconfigForContexts,
  type SiblingOptions,
  startKubeCluster,
  writeKubeconfig,
} from "./kube.ts";
import { type PostgresServer, serverIdentity, startPostgres } from "./postgres.ts";

/**
 * The variables, in the order `.dev/env` lists them. `KUBECONFIG` and `KUBE_*` are cluster A's
 * (with controllers and nodes), `KUBE_B_*` cluster B's; `KUBE_FLEET_KUBECONFIG` has a context for
 * each, `a` (current) and `b`, both as `admin`.
 */
export const TESTBED_ENV_NAMES = [
  "DATABASE_URL",
  "KUBECONFIG",
  "KUBE_SERVER",
  "KUBE_CA_FILE",
  "KUBE_ADMIN_TOKEN",
  "KUBE_LIMITED_TOKEN",
  "KUBE_CLIENT_CERT_FILE",
  "KUBE_CLIENT_KEY_FILE",
  "KUBE_B_SERVER",
  "KUBE_B_CA_FILE",
  "KUBE_B_ADMIN_TOKEN",
  "KUBE_B_LIMITED_TOKEN",
  "KUBE_FLEET_KUBECONFIG",
] as const;

/** Name of one test-bed environment variable. */
export type TestbedEnvName = typeof TESTBED_ENV_NAMES[number];

/**
 * A running test bed. Stopping it stops every process and removes its directory, unless it was
 * started with a `stateDir`.
 */
export interface Testbed extends AsyncDisposable {
  readonly dir: string;
  /** Whether `dir` outlives the test bed. */
  readonly kept: boolean;
  readonly postgres: PostgresServer;
  /** Cluster A; cluster B, when started, is its sibling, `kube.siblings[0]`. */
  readonly kube: KubeCluster;
  readonly env: Record<TestbedEnvName, string>;
  stop(): Promise<void>;
}

/** How to start a test bed. */
export interface TestbedOptions {
  /**
   * Keep the database, etcd's data and the credentials in this directory, and pick them up again
   * when it holds an earlier run's (`deno task dev --keep`). Default: a temporary directory,
   * removed on stop.
   */
  stateDir?: string;
  /** PostgreSQL major version (14 to 18); default `$OMNI_KUBE_PG`, else 18. */
  postgresMajor?: number;
  /**
   * Start cluster B (default true). Without it the `KUBE_B_*` variables are empty and the fleet
   * kubeconfig has only context `a`: for measurements, which an idle second API server on the
   * same two cores would disturb.
   */
  clusterB?: boolean;
}

/**
 * Cluster B: its own API server, credentials and etcd prefix, so that nothing of it is cluster A's;
 * nothing behind it (no controllers, scheduler or nodes), which keeps it cheap.
 */
export const CLUSTER_B: SiblingOptions = { name: "b", etcdPrefix: "/cluster-b" };

/** Clusters A and B, and the kubeconfig with a context for each (`a` current). */
async function startClusters(
  dir: string,
  { reuse, readableBy, fleetKubeconfigFile, clusterB }: {
    reuse: boolean;
    readableBy: number | undefined;
    fleetKubeconfigFile: string;
    clusterB: boolean;
  },
): Promise<KubeCluster> {
  const a = await startKubeCluster(dir, {
    reuse,
    siblings: clusterB ? [CLUSTER_B] : [],
    readableBy,
  });
  const b = a.siblings[0];
  try {
    await writeKubeconfig(
      fleetKubeconfigFile,
      kubeconfigForContexts([
        { name: "a", server: a.server, caFile: a.caFile, user: "admin", token: a.adminToken },
        ...(b
          ? [{ name: "b", server: b.server, caFile: b.caFile, user: "admin", token: b.adminToken }]
          : []),
      ]),
      readableBy,
    );
  } catch (error) {
    await a.stop();
    throw error;
  }
  return a;
}

/** Starts PostgreSQL and the Kubernetes control plane side by side. */
export async function startTestbed(
  { stateDir, postgresMajor, clusterB = true }: TestbedOptions = {},
): Promise<Testbed> {
  const kept = stateDir !== undefined;
  if (kept) {
    // Parents as any directory; as root, PostgreSQL's unprivileged user must traverse them.
    await Deno.mkdir(dirname(stateDir), { recursive: true });
    await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  }
  const dir = stateDir ?? await Deno.makeTempDir({ prefix: "omni_kube-testbed-" });
  const removeDir = () =>
    kept ? Promise.resolve() : Deno.remove(dir, { recursive: true }).catch(() => {});
  // As root, PostgreSQL runs as another OS user, whose group may read the kubeconfigs and the CA
  // files they name, so that a superuser's omni_kube.load_kubeconfig() can read them.
  const readableBy = (await serverIdentity())?.gid;
  const fleetKubeconfigFile = join(dir, "kubeconfig-fleet");
  const [postgres, kube] = await Promise.allSettled([
    startPostgres(dir, { major: postgresMajor, reuse: kept }),
    startClusters(dir, { reuse: kept, readableBy, fleetKubeconfigFile, clusterB }),
  ]);
  if (postgres.status === "rejected" || kube.status === "rejected") {
    if (postgres.status === "fulfilled") await postgres.value.stop();
    if (kube.status === "fulfilled") await kube.value.stop();
    await removeDir();
    const reasons = [postgres, kube].flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    throw new AggregateError(reasons, `test bed did not start: ${reasons.map(String).join("; ")}`);
  }
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= Promise.all([postgres.value.stop(), kube.value.stop()]).then(removeDir);
  const a = kube.value;
  const b = a.siblings[0];
  return {
    dir,
    kept,
    postgres: postgres.value,
    kube: a,
    env: {
      DATABASE_URL: postgres.value.url,
      KUBECONFIG: a.kubeconfigFile,
      KUBE_SERVER: a.server,
      KUBE_CA_FILE: a.caFile,
      KUBE_ADMIN_TOKEN: a.adminToken,
      KUBE_LIMITED_TOKEN: a.limitedToken,
      KUBE_CLIENT_CERT_FILE: a.clientCertFile,
      KUBE_CLIENT_KEY_FILE: a.clientKeyFile,
      KUBE_B_SERVER: b?.server ?? "",
      KUBE_B_CA_FILE: b?.caFile ?? "",
      KUBE_B_ADMIN_TOKEN: b?.adminToken ?? "",
      KUBE_B_LIMITED_TOKEN: b?.limitedToken ?? "",
      KUBE_FLEET_KUBECONFIG: fleetKubeconfigFile,
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** `value` as one single-quoted word for sh. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The env as a file for `source`/`.`: one `export NAME='value'` line per variable. */
export function formatEnvFile(env: Record<TestbedEnvName, string>): string {
  return TESTBED_ENV_NAMES.map((name) => `export ${name}=${shellQuote(env[name])}\n`).join("");
}
