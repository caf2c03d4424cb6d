/**
 * The worker's own cluster, used when a call names neither server nor credentials: inside a pod,
 * `https://kubernetes.default.svc` with the pod's service account; elsewhere, the current context of
 * the worker's kubeconfig. The worker's credentials are only ever sent to that server.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { dirname, isAbsolute, join } from "node:path";
import { type KubeTarget, normalizeServer } from "./kube/client.ts";

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

/** The `field` of the entry named `name` in a kubeconfig list; an empty entry reads as `{}`. */
function pick<T>(list: unknown, name: string, field: string, file: string): T {
  const entry = (Array.isArray(list) ? list : []).find((e) => e?.name === name);
  const value = entry?.[field] ?? (entry ? {} : undefined);
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`kubeconfig ${file}: no ${field} named "${name}"`);
  }
  return value as T;
}

function decodeBase64(text: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
}

/** Kubeconfig fields we read (client-go's names). */
interface KubeconfigCluster {
  server?: string;
  "insecure-skip-tls-verify"?: boolean;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
}
interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  exec?: unknown;
  "auth-provider"?: unknown;
  username?: string;
}

/**
 * The current context of a kubeconfig (YAML or JSON). Files it names are read relative to it, as
 * kubectl does. `exec` and `auth-provider` users are refused with a clear error.
 */
export async function kubeconfigCluster(file: string, context?: string): Promise<DefaultCluster> {
  const text = await Deno.readTextFile(file);
  // deno-lint-ignore no-explicit-any -- kubeconfig is untyped YAML; fields are checked as read
  const config: any = parseYaml(text);
  const contextName = context ?? config?.["current-context"];
  if (!contextName) throw new Error(`kubeconfig ${file}: no current-context`);
  const ctx = pick<{ cluster: string; user?: string }>(
    config?.contexts,
    contextName,
    "context",
    file,
  );
  const cluster = pick<KubeconfigCluster>(config?.clusters, ctx.cluster, "cluster", file);
  const user: KubeconfigUser = ctx.user ? pick(config?.users, ctx.user, "user", file) : {};
  const relative = (path: string) => isAbsolute(path) ? path : join(dirname(file), path);
  const fileOrData = async (path?: string, data?: string) =>
    data ? decodeBase64(data) : path ? await Deno.readTextFile(relative(path)) : undefined;

  if (user.exec || user["auth-provider"]) {
    throw new Error(
      `kubeconfig ${file}: user "${ctx.user}" authenticates through ${
        user.exec ? "exec" : "auth-provider"
      }, which the worker does not run; use a token, tokenFile or client certificate`,
    );
  }
  if (cluster["insecure-skip-tls-verify"]) {
    throw new Error(
      `kubeconfig ${file}: cluster "${ctx.cluster}" turns TLS verification off, which the worker ` +
        "never does; give its CA as certificate-authority or certificate-authority-data",
    );
  }
  if (!cluster.server) {
    throw new Error(`kubeconfig ${file}: cluster "${ctx.cluster}" has no server`);
  }
  const certificate = await fileOrData(user["client-certificate"], user["client-certificate-data"]);
  const privateKey = await fileOrData(user["client-key"], user["client-key-data"]);
  if ((certificate === undefined) !== (privateKey === undefined)) {
    throw new Error(
      `kubeconfig ${file}: user "${ctx.user}" has a client ${
        certificate === undefined ? "key without its certificate" : "certificate without its key"
      }`,
    );
  }
  const token = user.token ??
    (user.tokenFile ? (await Deno.readTextFile(relative(user.tokenFile))).trim() : undefined);
  return {
    target: {
      server: normalizeServer(cluster.server),
      caCert: await fileOrData(
        cluster["certificate-authority"],
        cluster["certificate-authority-data"],
      ),
      token,
      clientCert: certificate && privateKey ? { certificate, privateKey } : undefined,
    },
    source: `kubeconfig ${file}, context ${contextName}`,
  };
}

/**
 * The worker's default cluster: the pod's service account, else the first existing file of
 * `$KUBECONFIG` (or `~/.kube/config`), else none.
 */
export async function defaultCluster(
  env: { KUBECONFIG?: string; HOME?: string } = {
    KUBECONFIG: Deno.env.get("KUBECONFIG"),
    HOME: Deno.env.get("HOME"),
  },
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): Promise<DefaultCluster | undefined> {
  const pod = await podServiceAccount(serviceAccountDir);
  if (pod) return pod;
  const candidates = env.KUBECONFIG
    ? env.KUBECONFIG.split(":").filter(Boolean)
    : env.HOME
    ? [join(env.HOME, ".kube", "config")]
    : [];
  for (const file of candidates) {
    if (await readIfExists(file) !== undefined) return await kubeconfigCluster(file);
  }
  return undefined;
}
