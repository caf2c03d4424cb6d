/**
 * The control plane behind the API server: kube-controller-manager (Deployments get ReplicaSets and
 * Pods, namespaces finish deleting, owned objects are collected, Events are recorded) and
 * kube-scheduler (Pods get nodes). Both run as the admin, serve their health endpoints over TLS with
 * a certificate from the run's CA, and are ready when `/healthz` answers.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";

/** What both components need: a kubeconfig and a serving certificate for their health port. */
export interface ComponentConfig {
  dir: string;
  kubeconfigFile: string;
  caCertificate: string;
  servingCertFile: string;
  servingKeyFile: string;
}

/** Files the controller manager signs with: service-account tokens and the cluster's CA bundle. */
export interface ControllerManagerFiles {
  serviceAccountPrivateKeyFile: string;
  rootCaFile: string;
  clusterSigningCertFile: string;
  clusterSigningKeyFile: string;
}

async function startComponent(
  name: string,
  binary: string,
  config: ComponentConfig,
  extraArgs: string[],
): Promise<ManagedProcess> {
  const port = freePort();
  const process = await spawnProcess(name, binary, {
    args: [
      `--kubeconfig=${config.kubeconfigFile}`,
      `--authentication-kubeconfig=${config.kubeconfigFile}`,
      `--authorization-kubeconfig=${config.kubeconfigFile}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      `--secure-port=${port}`,
      `--tls-cert-file=${config.servingCertFile}`,
      `--tls-private-key-file=${config.servingKeyFile}`,
      "--v=1",
      ...extraArgs,
    ],
    logFile: join(config.dir, `${name}.log`),
  });
  using http = Deno.createHttpClient({ caCerts: [config.caCertificate] });
  try {
    await waitUntilReady(process, "/healthz ok", async () => {
      const response = await fetch(`https://127.0.0.1:${port}/healthz`, { client: http });
      await response.body?.cancel();
      return response.ok;
    }, { timeoutMs: 120_000, intervalMs: 250 });
  } catch (error) {
    await process.stop("SIGTERM", 10_000);
    throw error;
  }
  return process;
}

/** Starts kube-controller-manager with every controller a cluster runs by default. */
export function startControllerManager(
  binary: string,
  config: ComponentConfig,
  files: ControllerManagerFiles,
): Promise<ManagedProcess> {
  return startComponent("kube-controller-manager", binary, config, [
    "--controllers=*",
    `--service-account-private-key-file=${files.serviceAccountPrivateKeyFile}`,
    `--root-ca-file=${files.rootCaFile}`,
    `--cluster-signing-cert-file=${files.clusterSigningCertFile}`,
    `--cluster-signing-key-file=${files.clusterSigningKeyFile}`,
    // KWOK gives pods their IPs; nothing here allocates node CIDRs.
    "--allocate-node-cidrs=false",
    // Deleted namespaces and collected objects should go within seconds, as tests wait for them.
    "--concurrent-namespace-syncs=4",
    "--concurrent-gc-syncs=20",
  ]);
}

/** Starts kube-scheduler with its default profile. */
export function startScheduler(binary: string, config: ComponentConfig): Promise<ManagedProcess> {
  return startComponent("kube-scheduler", binary, config, []);
}
