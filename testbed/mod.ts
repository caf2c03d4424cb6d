/**
 * The test bed: a throwaway PostgreSQL cluster and a real kube-apiserver (with etcd) on loopback,
 * started together, described by the environment variables that `deno task dev` writes to
 * `.dev/env` and that `deno task test` passes to the test files.
 *
 * ```ts
 * await using testbed = await startTestbed();
 * console.log(testbed.env.DATABASE_URL, testbed.env.KUBE_SERVER);
 * ```
 *
 * @module
 */
import { type KubeApiServer, startKubeApiServer } from "./kube.ts";
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

/** A running test bed. Stopping it stops every process and removes its directory. */
export interface Testbed extends AsyncDisposable {
  readonly dir: string;
  readonly postgres: PostgresServer;
  readonly kube: KubeApiServer;
  readonly env: Record<TestbedEnvName, string>;
  stop(): Promise<void>;
}

/** Starts PostgreSQL and the Kubernetes API server side by side in a fresh temporary directory. */
export async function startTestbed(): Promise<Testbed> {
  const dir = await Deno.makeTempDir({ prefix: "omni_kube-testbed-" });
  const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  const [postgres, kube] = await Promise.allSettled([startPostgres(dir), startKubeApiServer(dir)]);
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

/** The env as a file for `source`/`.`: one `export NAME='value'` line per variable. */
export function formatEnvFile(env: Record<TestbedEnvName, string>): string {
  const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;
  return TESTBED_ENV_NAMES.map((name) => `export ${name}=${quote(env[name])}\n`).join("");
}
