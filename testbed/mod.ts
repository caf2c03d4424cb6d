/**
 * The test bed: a PostgreSQL cluster and a real Kubernetes control plane (etcd, kube-apiserver,
 * controllers, scheduler and KWOK's simulated nodes) on loopback, started together, described by
 * the environment variables that `deno task dev` writes to `.dev/env` and that `deno task test`
 * passes to the test files. Throwaway by default; with `stateDir` its state is kept there.
 *
 * ```ts
 * await using testbed = await startTestbed();
 * console.log(testbed.env.DATABASE_URL, testbed.env.KUBE_SERVER);
 * ```
 *
 * @module
 */
import { dirname } from "node:path";
import { type KubeCluster, startKubeCluster } from "./kube.ts";
import { type PostgresServer, startPostgres } from "./postgres.ts";

/** The variables, in the order `.dev/env` lists them. */
export const TESTBED_ENV_NAMES = [
  "DATABASE_URL",
  "KUBECONFIG",
  "KUBE_SERVER",
  "KUBE_CA_FILE",
  "KUBE_ADMIN_TOKEN",
  "KUBE_LIMITED_TOKEN",
  "KUBE_CLIENT_CERT_FILE",
  "KUBE_CLIENT_KEY_FILE",
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
}

/** Starts PostgreSQL and the Kubernetes control plane side by side. */
export async function startTestbed(
  { stateDir, postgresMajor }: TestbedOptions = {},
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
  const [postgres, kube] = await Promise.allSettled([
    startPostgres(dir, { major: postgresMajor, reuse: kept }),
    startKubeCluster(dir, { reuse: kept }),
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
  return {
    dir,
    kept,
    postgres: postgres.value,
    kube: kube.value,
    env: {
      DATABASE_URL: postgres.value.url,
      KUBECONFIG: kube.value.kubeconfigFile,
      KUBE_SERVER: kube.value.server,
      KUBE_CA_FILE: kube.value.caFile,
      KUBE_ADMIN_TOKEN: kube.value.adminToken,
      KUBE_LIMITED_TOKEN: kube.value.limitedToken,
      KUBE_CLIENT_CERT_FILE: kube.value.clientCertFile,
      KUBE_CLIENT_KEY_FILE: kube.value.clientKeyFile,
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
