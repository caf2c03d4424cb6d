/**
 * The worker's own cluster, used when a call names neither server nor credentials: inside a pod,
 * `https://kubernetes.default.svc` with the pod's service account; elsewhere, the current context of
 * the worker's kubeconfig. The worker's credentials are only ever sent to that server.
 *
 * @module
 */
import { join } from "node:path";
import type { KubeTarget } from "./kube/client.ts";
import {
  type Kubeconfig,
  NoKubeconfigError,
  readKubeconfig,
  resolveContext,
} from "./kube/kubeconfig.ts";
import { clusterFromConfig } from "./kube/clusters.ts";

/** Where the service-account files of a pod are mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The worker's default cluster and where it came from (for logs: never the secrets). */
export interface DefaultCluster {
  target: KubeTarget;
  source: string;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The pod's service account, if the worker runs in a pod. */
export async function podServiceAccount(
  dir: string = SERVICE_ACCOUNT_DIR,
): Promise<DefaultCluster | undefined> {
  const token = await readIfExists(join(dir, "token"));
  if (token === undefined) return undefined;
  return {
    target: {
      server: "https://kubernetes.default.svc",
      token: token.trim(),
      caCert: await readIfExists(join(dir, "ca.crt")),
    },
    source: `service account (${dir})`,
  };
}

/**
 * The default cluster of a kubeconfig: `context`, else its current context. A token file is read
 * once, here. Exec plugins are refused: the default cluster's credentials are fixed when the worker
 * starts, and a plugin's expire.
 */
async function clusterOf(config: Kubeconfig, context?: string): Promise<DefaultCluster> {
  const name = context ?? config.currentContext;
  if (!name) throw new Error(`kubeconfig ${config.files.join(", ")}: no current-context`);
  const cluster = await resolveContext(config, name);
  const { auth } = cluster;
  if (auth.kind === "exec") {
    throw new Error(
      `kubeconfig ${cluster.file}, context "${name}": user "${cluster.userName}" authenticates ` +
        "through exec, which the worker does not run for its default cluster; use a token, " +
        "tokenFile or client certificate",
    );
  }
  return {
    target: await clusterFromConfig(name, cluster).target(),
    source: `kubeconfig ${cluster.file}, context ${name}`,
  };
}

/**
 * The current context (or `context`) of a kubeconfig file (YAML or JSON), resolved by
 * {@linkcode resolveContext}: files it names are read relative to it, as kubectl does, and what
 * the worker cannot honour is refused with a clear error. `exec` users are refused too (see
 * {@linkcode clusterOf}).
 */
export async function kubeconfigCluster(file: string, context?: string): Promise<DefaultCluster> {
  return await clusterOf(await readKubeconfig([file]), context);
}

/** The kubeconfig files kubectl would read: `$KUBECONFIG`, `:`-separated, else `~/.kube/config`. */
export function kubeconfigFiles(env: { KUBECONFIG?: string; HOME?: string }): string[] {
  if (env.KUBECONFIG) return env.KUBECONFIG.split(":").filter(Boolean);
  return env.HOME ? [join(env.HOME, ".kube", "config")] : [];
}

/**
 * The worker's default cluster: the pod's service account, else the current context (or `context`)
 * of the files of `$KUBECONFIG` merged as kubectl merges them (or of `~/.kube/config`), else none.
 */
export async function defaultCluster(
  env: { KUBECONFIG?: string; HOME?: string } = {
    KUBECONFIG: Deno.env.get("KUBECONFIG"),
    HOME: Deno.env.get("HOME"),
  },
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
  context?: string,
): Promise<DefaultCluster | undefined> {
  const pod = await podServiceAccount(serviceAccountDir);
  if (pod) return pod;
  let config: Kubeconfig;
  try {
    config = await readKubeconfig(kubeconfigFiles(env));
  } catch (error) {
    if (error instanceof NoKubeconfigError) return undefined;
    throw error;
  }
  return await clusterOf(config, context);
}
