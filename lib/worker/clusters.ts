/**
 * The named clusters a worker serves, as it publishes them: loaded at start from its kubeconfig
 * (and its pod's service account, as `in-cluster`), probed now and then, and written to
 * `omni_kube.worker_cluster` for `omni_kube.clusters` and for the checks callers make.
 *
 * @module
 */
import type { DefaultCluster } from "../credentials.ts";
import type { KubeFetch } from "../kube/client.ts";
import {
  IN_CLUSTER,
  loadClusters,
  type NamedCluster,
  podCluster,
  probeCluster,
  type UnusableCluster,
} from "../kube/clusters.ts";
import { NoKubeconfigError } from "../kube/kubeconfig.ts";
import type { PublishedCluster } from "../queue/maintenance.ts";
import { errorMessage, type Logger } from "../observe.ts";

/** What {@linkcode ServedClusters} works with. */
export interface ServedClustersOptions {
  /** Makes the probes' HTTP calls. */
  fetch: KubeFetch;
  /** Writes the clusters as published, in place of what was published before. */
  publish(clusters: PublishedCluster[]): Promise<void>;
  log: Logger;
}

/** The named clusters of one worker, usable or not (with why), and what its probes found. */
export class ServedClusters {
  readonly #options: ServedClustersOptions;
  readonly #clusters = new Map<string, NamedCluster | UnusableCluster>();
  readonly #probes = new Map<string, PublishedCluster>();
  #pod: DefaultCluster | undefined;

  /** Serves nothing until loaded. */
  constructor(options: ServedClustersOptions) {
    this.#options = options;
  }

  /**
   * The contexts of the kubeconfig `files` (all, or `contexts`), and the pod's service account
   * (`pod`) as `in-cluster`. Without a kubeconfig, only the latter; naming contexts the kubeconfig
   * lacks, or that cannot be read, is an error.
   */
  async load(files: string[], contexts: string[] | undefined, pod: DefaultCluster | undefined) {
    const { log } = this.#options;
    this.#pod = pod;
    if (pod) {
      this.#clusters.set(
        IN_CLUSTER,
        podCluster(pod.target.server, () => {
          const target = this.#pod?.target;
          return target?.token ? { token: target.token, caCert: target.caCert } : undefined;
        }),
      );
    }
    if (files.length > 0 || contexts) {
      try {
        const { clusters, unusable } = await loadClusters(files, contexts);
        for (const [name, cluster] of clusters) this.#clusters.set(name, cluster);
        for (const cluster of unusable) {
          this.#clusters.set(cluster.name, cluster);
          log.warn("cluster unusable", { cluster: cluster.name, error: cluster.error });
        }
      } catch (error) {
        // No kubeconfig at all is usual inside a pod, unless contexts were asked for.
        if (contexts) throw error;
        if (error instanceof NoKubeconfigError) {
          log.debug("no kubeconfig: no named clusters from it", { files });
        } else {
          log.warn("kubeconfig unusable: no named clusters from it", {
            error: errorMessage(error),
          });
        }
      }
    }
    log.info("named clusters", { clusters: [...this.#clusters.keys()] });
  }

  /** The pod's service account was read again (its token rotates). */
  podAccount(pod: DefaultCluster): void {
    this.#pod = pod;
  }

  /** How many clusters it serves, usable or not. */
  get size(): number {
    return this.#clusters.size;
  }

  /** The cluster `name`, or why it cannot be used; undefined if not served. */
  get(name: string): NamedCluster | UnusableCluster | undefined {
    return this.#clusters.get(name);
  }

  /** The names of those it can use: the clusters whose requests it claims. */
  usable(): string[] {
    return [...this.#clusters].flatMap(([name, cluster]) => "error" in cluster ? [] : [name]);
  }

  /** Publishes every cluster as last probed (not yet probed: what is known without asking). */
  async publish(): Promise<void> {
    await this.#options.publish(
      [...this.#clusters].map(([name, cluster]) => this.#probes.get(name) ?? unprobed(cluster)),
    );
  }

  /** Probes every usable cluster at once, then publishes what was found. */
  async probe(): Promise<void> {
    await Promise.all(
      [...this.#clusters.values()].flatMap((cluster) =>
        "error" in cluster ? [] : [
          probeCluster(this.#options.fetch, cluster).then((probe) => {
            this.#probes.set(cluster.name, {
              ...unprobed(cluster),
              server_version: probe.serverVersion ?? null,
              reachable: probe.reachable,
              last_error: probe.error ?? null,
              checked: true,
            });
          }),
        ]
      ),
    );
    await this.publish();
  }
}

/** A cluster as published before any probe: an unusable one with its reason. */
function unprobed(cluster: NamedCluster | UnusableCluster): PublishedCluster {
  return "error" in cluster
    ? {
      name: cluster.name,
      usable: false,
      server: null,
      auth: null,
      server_version: null,
      reachable: false,
      last_error: cluster.error,
      checked: true,
    }
    : {
      name: cluster.name,
      usable: true,
      server: cluster.server,
      auth: cluster.auth,
      server_version: null,
      reachable: null,
      last_error: null,
      checked: false,
    };
}
