/**
 * `deno task dev`: starts the test bed for local development, writes `.dev/env`, stays in the
 * foreground, and on Ctrl-C or SIGTERM stops everything and removes its temporary state.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { formatEnvFile, startTestbed, type Testbed } from "./mod.ts";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const ENV_FILE = join(PROJECT_DIR, ".dev", "env");

function log(message: string) {
  console.error(`[dev] ${message}`);
}

/** Starts the worker (`deno task start`) against the test bed, and waits until it is serving. */
async function startWorker(testbed: Testbed, httpPort: number): Promise<ManagedProcess> {
  const worker = await spawnProcess("worker", Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      join(PROJECT_DIR, "mod.ts"),
      "start",
      "--http-host=127.0.0.1",
      `--http-port=${httpPort}`,
    ],
    env: { DATABASE_URL: testbed.env.DATABASE_URL, KUBECONFIG: testbed.env.KUBECONFIG },
    logFile: join(testbed.dir, "worker.log"),
    echo: true,
  });
  const sql = postgres(testbed.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await waitUntilReady(worker, "serving", async () => {
      // The worker installs the shim first: until then the function does not exist.
      const [{ installed }] =
        await sql`select exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'omni_kube' and c.relname = 'workers') as installed`;
      if (!installed) return false;
      const [{ alive }] = await sql`select omni_kube._worker_alive() as alive`;
      return alive;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  } catch (error) {
    await worker.stop();
    throw error;
  } finally {
    await sql.end();
  }
  return worker;
}

async function main(): Promise<void> {
  log(
    "starting PostgreSQL, etcd, kube-apiserver and the worker (the first run builds kube-apiserver)",
  );
  const testbed = await startTestbed();
  const stopped = new Promise<Deno.Signal>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
  let worker: ManagedProcess | undefined;
  try {
    const httpPort = freePort();
    worker = await startWorker(testbed, httpPort);
    await Deno.mkdir(dirname(ENV_FILE), { recursive: true });
    await Deno.writeTextFile(ENV_FILE, formatEnvFile(testbed.env), { mode: 0o600 });
    const [etcd, apiserver] = testbed.kube.processes;
    console.log(`
omni_kube development environment
  PostgreSQL      ${testbed.env.DATABASE_URL}  (pid ${testbed.postgres.process.pid}, socket ${testbed.postgres.socketDir})
  etcd            ${testbed.kube.etcdUrl}  (pid ${etcd.pid})
  kube-apiserver  ${testbed.env.KUBE_SERVER}  (pid ${apiserver.pid})
  worker          deno task start  (pid ${worker.pid}; http://127.0.0.1:${httpPort}/metrics)
  state           ${testbed.dir}  (logs: *.log; removed on exit)

  source .dev/env
  psql "$DATABASE_URL" -c "select omni_kube.api('/api/v1/namespaces')"
  kubectl --kubeconfig "$KUBECONFIG" get namespaces

Ctrl-C stops everything.`);
    const processes = [testbed.postgres.process, ...testbed.kube.processes, worker];
    const reason = await Promise.race([
      stopped.then((signal) => `${signal}: stopping`),
      ...processes.map((p) =>
        p.exited.then((s) => `${p.name} exited unexpectedly (code ${s.code}; see ${p.logFile})`)
      ),
    ]);
    log(reason);
  } finally {
    await Deno.remove(ENV_FILE).catch(() => {});
    await worker?.stop();
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
