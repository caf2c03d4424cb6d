/**
 * Nodes without containers: KWOK (Kubernetes WithOut Kubelet) manages the test bed's nodes and
 * plays pod lifecycles on them from the stages in `kwok/stages.yaml`, so scheduled Pods reach
 * `Running` with conditions, IPs and container states, and deleted Pods go. Its server stands in
 * for the kubelet's: the API server fetches pod logs from it, and it answers every container with
 * the lines of one log file.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";

/** Nodes the test bed creates; Pods are spread over them by the scheduler. */
export const NODE_NAMES = ["kwok-node-0", "kwok-node-1"] as const;

/** The annotation by which KWOK recognises the nodes it manages. */
const NODE_ANNOTATION = "kwok.x-k8s.io/node";

/** The line that every container's log holds (CRI log format: time, stream, tag, text). */
export const CONTAINER_LOG_LINE = "hello from a kwok container";

const STAGES_FILE = new URL("./kwok/stages.yaml", import.meta.url);

/** How KWOK reaches the API server and serves the kubelet endpoints. */
export interface KwokConfig {
  dir: string;
  server: string;
  adminToken: string;
  caCertificate: string;
  kubeconfigFile: string;
  servingCertFile: string;
  servingKeyFile: string;
}

function nodeManifest(name: string) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { [NODE_ANNOTATION]: "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/agent": "",
        type: "kwok",
      },
    },
    status: {
      allocatable: { cpu: "32", memory: "256Gi", pods: "110" },
      capacity: { cpu: "32", memory: "256Gi", pods: "110" },
      nodeInfo: {
        architecture: "amd64",
        operatingSystem: "linux",
        kubeletVersion: "kwok",
        kubeProxyVersion: "kwok",
      },
    },
  };
}

/**
 * Starts KWOK, creates the nodes (unless they exist, as in a kept state directory) and waits until
 * every node is Ready.
 */
export async function startKwok(binary: string, config: KwokConfig): Promise<ManagedProcess> {
  const logsFile = join(config.dir, "kwok-container.log");
  await Deno.writeTextFile(
    logsFile,
    `2026-01-01T00:00:00.000000000Z stdout F ${CONTAINER_LOG_LINE}\n`,
  );
  const configFile = join(config.dir, "kwok.yaml");
  const clusterLogs = JSON.stringify({
    apiVersion: "kwok.x-k8s.io/v1alpha1",
    kind: "ClusterLogs",
    metadata: { name: "every-container" },
    spec: { logs: [{ logsFile }] },
  });
  await Deno.writeTextFile(
    configFile,
    `${await Deno.readTextFile(STAGES_FILE)}\n---\n${clusterLogs}\n`,
  );

  const port = freePort();
  const process = await spawnProcess("kwok", binary, {
    args: [
      `--kubeconfig=${config.kubeconfigFile}`,
      `--config=${configFile}`,
      `--manage-nodes-with-annotation-selector=${NODE_ANNOTATION}=fake`,
      "--node-ip=127.0.0.1",
      `--node-port=${port}`,
      `--server-address=127.0.0.1:${port}`,
      `--tls-cert-file=${config.servingCertFile}`,
      `--tls-private-key-file=${config.servingKeyFile}`,
      "--node-lease-duration-seconds=40",
      "--cidr=10.244.0.0/16",
    ],
    logFile: join(config.dir, "kwok.log"),
  });
  using http = Deno.createHttpClient({ caCerts: [config.caCertificate] });
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${config.server}${path}`, {
      ...init,
      client: http,
      headers: { authorization: `Bearer ${config.adminToken}`, "content-type": "application/json" },
    });
  try {
    for (const name of NODE_NAMES) {
      const response = await api("/api/v1/nodes", {
        method: "POST",
        body: JSON.stringify(nodeManifest(name)),
      });
      const text = await response.text();
      if (!response.ok && response.status !== 409) {
        throw new Error(`creating node ${name} failed: HTTP ${response.status} ${text}`);
      }
    }
    await waitUntilReady(process, `nodes ${NODE_NAMES.join(", ")} Ready`, async () => {
      const response = await api("/api/v1/nodes?labelSelector=type%3Dkwok");
      const list = await response.json() as {
        items?: { status?: { conditions?: { type: string; status: string }[] } }[];
      };
      const ready = (list.items ?? []).filter((node) =>
        node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      );
      return ready.length >= NODE_NAMES.length;
    }, { timeoutMs: 60_000, intervalMs: 250 });
  } catch (error) {
    await process.stop("SIGTERM", 10_000);
    throw error;
  }
  return process;
}
