/**
 * The named clusters a worker serves: the contexts of its kubeconfig (all of them, or those
 * chosen), and inside a pod its service account as `in-cluster`. Each gives the server, the CA
 * and credentials for a call: a static token or client certificate, a token file read again as it
 * rotates, or an exec plugin's credential, renewed before it expires and after a 401.
 *
 * Knows nothing about PostgreSQL.
 *
 * @module
 */
import type { KubeFetch, KubeTarget } from "./client.ts";
import { type ClusterConfig, readKubeconfig, readTokenFile, resolveContext } from "./kubeconfig.ts";
import { type ExecCredential, ExecCredentialSource } from "./exec_credential.ts";

/** How the worker authenticates to a cluster, as `omni_kube.clusters` shows it. */
export type AuthKind = "token" | "client-certificate" | "exec" | "none";

/** The name a pod's own cluster is served under. */
export const IN_CLUSTER = "in-cluster";

/** A token file is read again after this long (projected service-account tokens rotate). */
const TOKEN_FILE_TTL_MS = 60_000;

/** Where the credentials of a cluster come from. */
export type CredentialSource =
  | { kind: "static"; token?: string; clientCert?: KubeTarget["clientCert"] }
  | { kind: "token-file"; path: string; token?: string; readAt: number }
  | { kind: "exec"; source: ExecCredentialSource }
  | { kind: "pod"; current: () => { token: string; caCert?: string } | undefined };

/** One named cluster the worker serves. */
export class NamedCluster {
  readonly #credentials: CredentialSource;
  /** The plugin's credential behind each target handed out, for invalidating exactly it. */
  readonly #issued = new WeakMap<KubeTarget, ExecCredential>();

  /** See {@linkcode clusterFromConfig} and {@linkcode podCluster}. */
  constructor(
    readonly name: string,
    readonly server: string,
    readonly caCert: string | undefined,
    readonly auth: AuthKind,
    credentials: CredentialSource,
  ) {
    this.#credentials = credentials;
  }

  /** Server, CA and current credentials for a call. */
  async target(signal?: AbortSignal): Promise<KubeTarget> {
    const base = { server: this.server, caCert: this.caCert };
    const source = this.#credentials;
    switch (source.kind) {
      case "static":
        return { ...base, token: source.token, clientCert: source.clientCert };
      case "token-file":
        if (source.token === undefined || Date.now() - source.readAt > TOKEN_FILE_TTL_MS) {
          source.token = await readToken(this.name, source.path);
          source.readAt = Date.now();
        }
        return { ...base, token: source.token };
      case "exec": {
        const credential = await source.source.get(signal);
        const target = { ...base, token: credential.token, clientCert: credential.clientCert };
        this.#issued.set(target, credential);
        return target;
      }
      case "pod": {
        const pod = source.current();
        return { ...base, caCert: pod?.caCert ?? this.caCert, token: pod?.token };
      }
    }
  }

  /**
   * `send` with this cluster's server and credentials. A credential may have been revoked or have
   * expired early: refused (401), it is renewed where it can be, and `send` tried once more after
   * `discard` of the refusal.
   */
  async send<T extends { status: number }>(
    signal: AbortSignal | undefined,
    send: (target: KubeTarget) => Promise<T>,
    discard: (refused: T) => Promise<void> | undefined = () => undefined,
  ): Promise<T> {
    const target = await this.target(signal);
    const answer = await send(target);
    if (answer.status !== 401 || !this.#renewAfterUnauthorized(target)) return answer;
    await discard(answer);
    return await send(await this.target(signal));
  }

  /**
   * The server answered 401 to a call made with `target`: renews what can be renewed (an exec
   * plugin's credential, a token file) and says whether one more try may succeed.
   */
  #renewAfterUnauthorized(target: KubeTarget): boolean {
    const source = this.#credentials;
    if (source.kind === "exec") {
      const credential = this.#issued.get(target);
      if (credential) source.source.invalidate(credential);
      return true;
    }
    if (source.kind === "token-file" && source.token === target.token) {
      source.token = undefined;
      return true;
    }
    return false;
  }
}

async function readToken(cluster: string, path: string): Promise<string> {
  try {
    return await readTokenFile(path);
  } catch (error) {
    throw new Error(`cluster "${cluster}": ${error instanceof Error ? error.message : error}`);
  }
}

/** A named cluster from a resolved kubeconfig context. */
export function clusterFromConfig(name: string, config: ClusterConfig): NamedCluster {
  const { server, caCert, auth } = config;
  // (Exhaustive: a kind added to ClusterAuth fails type checking here.)
  switch (auth.kind) {
    case "none":
      return new NamedCluster(name, server, caCert, "none", { kind: "static" });
    case "token":
      return new NamedCluster(name, server, caCert, "token", { kind: "static", token: auth.token });
    case "token-file":
      return new NamedCluster(name, server, caCert, "token", {
        kind: "token-file",
        path: auth.path,
        readAt: 0,
      });
    case "client-certificate":
      return new NamedCluster(name, server, caCert, "client-certificate", {
        kind: "static",
        clientCert: { certificate: auth.certificate, privateKey: auth.privateKey },
      });
    case "exec":
      return new NamedCluster(name, server, caCert, "exec", {
        kind: "exec",
        source: new ExecCredentialSource(name, auth.exec, config.execCluster),
      });
  }
}

/** The pod's own cluster, `in-cluster`, with the service account the worker keeps current. */
export function podCluster(
  server: string,
  current: () => { token: string; caCert?: string } | undefined,
): NamedCluster {
  return new NamedCluster(IN_CLUSTER, server, current()?.caCert, "token", {
    kind: "pod",
    current,
  });
}

/** A context the worker was asked to serve but cannot: shown with its error, and failing calls. */
export interface UnusableCluster {
  name: string;
  error: string;
}

/** The clusters of a kubeconfig, by context name. */
export interface ClusterSet {
  clusters: Map<string, NamedCluster>;
  unusable: UnusableCluster[];
}

/**
 * The contexts of the kubeconfig merged from `files` (as kubectl merges `$KUBECONFIG`), all of
 * them or those named in `contexts`. A context that cannot be used (a missing file, a refused
 * setting) is returned as unusable, with the reason, rather than stopping the others; naming one
 * the kubeconfig lacks (a typo) is an error.
 */
export async function loadClusters(files: string[], contexts?: string[]): Promise<ClusterSet> {
  const config = await readKubeconfig(files);
  const missing = (contexts ?? []).filter((name) => !config.contextNames.includes(name));
  if (missing.length > 0) {
    throw new Error(
      `the kubeconfig (${config.files.join(":")}) has no context ${
        missing.map((name) => `"${name}"`).join(", ")
      }; it has ${config.contextNames.map((name) => `"${name}"`).join(", ") || "none"}`,
    );
  }
  const names = contexts ?? config.contextNames;
  const clusters = new Map<string, NamedCluster>();
  const unusable: UnusableCluster[] = [];
  for (const name of names) {
    try {
      clusters.set(name, clusterFromConfig(name, await resolveContext(config, name)));
    } catch (error) {
      unusable.push({ name, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return { clusters, unusable };
}

/** What a probe of a cluster found. */
export interface ClusterProbe {
  reachable: boolean;
  /** The server's `gitVersion`, when it answered. */
  serverVersion?: string;
  error?: string;
}

/**
 * Asks the cluster's `/version` with its credentials (renewed once after a 401, as for a call):
 * whether it answers, its version, and what went wrong (a 401 means the credentials are refused).
 */
export async function probeCluster(
  fetch: KubeFetch,
  cluster: NamedCluster,
  timeoutMs = 5_000,
): Promise<ClusterProbe> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await cluster.send(
      signal,
      (target) => fetch(target, { method: "GET", path: "/version", signal }),
      (refused) => refused.body?.cancel(),
    );
    if (!response.ok) {
      await response.body?.cancel();
      return {
        reachable: true,
        error: `/version answered ${response.status}${
          response.status === 401 ? ": the credentials were refused" : ""
        }`,
      };
    }
    const body = await response.json();
    return {
      reachable: true,
      serverVersion: typeof body?.gitVersion === "string" ? body.gitVersion : undefined,
    };
  } catch (error) {
    return { reachable: false, error: error instanceof Error ? error.message : String(error) };
  }
}
