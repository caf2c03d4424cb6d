/**
 * `deno task dev`: starts the test bed for local development, writes `.dev/env`, stays in the
 * foreground, and on Ctrl-C or SIGTERM stops everything and removes its temporary state.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatEnvFile, startTestbed } from "./mod.ts";

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const ENV_FILE = join(PROJECT_DIR, ".dev", "env");

function log(message: string) {
  console.error(`[dev] ${message}`);
}

async function main(): Promise<void> {
  log("starting PostgreSQL, etcd and kube-apiserver (the first run builds kube-apiserver)");
  const testbed = await startTestbed();
  const stopped = new Promise<Deno.Signal>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
  try {
    await Deno.mkdir(dirname(ENV_FILE), { recursive: true });
    await Deno.writeTextFile(ENV_FILE, formatEnvFile(testbed.env), { mode: 0o600 });
    const [etcd, apiserver] = testbed.kube.processes;
    console.log(`
omni_kube development environment
  PostgreSQL      ${testbed.env.DATABASE_URL}  (pid ${testbed.postgres.process.pid}, socket ${testbed.postgres.socketDir})
  etcd            ${testbed.kube.etcdUrl}  (pid ${etcd.pid})
  kube-apiserver  ${testbed.env.KUBE_SERVER}  (pid ${apiserver.pid})
  state           ${testbed.dir}  (logs: *.log; removed on exit)

  source .dev/env
  psql "$DATABASE_URL"
  kubectl --kubeconfig "$KUBECONFIG" get namespaces

Ctrl-C stops everything.`);
    const processes = [testbed.postgres.process, ...testbed.kube.processes];
    const reason = await Promise.race([
      stopped.then((signal) => `${signal}: stopping`),
      ...processes.map((p) =>
        p.exited.then((s) => `${p.name} exited unexpectedly (code ${s.code}; see ${p.logFile})`)
      ),
    ]);
    log(reason);
  } finally {
    await Deno.remove(ENV_FILE).catch(() => {});
    await testbed.stop();
    log("stopped; temporary state removed");
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
  Deno.exit(0);
}
