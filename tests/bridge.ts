/**
 * A bridge for one test file: a fresh database in the shared test bed, the shim installed, and a
 * worker serving it in this process, whose default cluster is the test bed's (admin kubeconfig).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { DEFAULT_WORKER_CONFIG, Worker, type WorkerConfig } from "../lib/worker.ts";
import { createLogger } from "../lib/observe.ts";
import { testbedEnv } from "./testbed.ts";

/** A database with the shim, served by `workers`. */
export interface Bridge extends AsyncDisposable {
  /** Superuser connection to the bridge's database. */
  sql: postgres.Sql<Record<string, never>>;
  url: string;
  database: string;
  workers: Worker[];
  /** Starts one more worker on the same database. */
  startWorker(overrides?: Partial<WorkerConfig>): Promise<Worker>;
  /**
   * Starts a worker as users run it (`deno run mod.ts start ARGS`, a process of its own, logging
   * at `OMNI_KUBE_LOG_LEVEL` or `error` to this process's stderr); settles once it serves. The
   * process is killed on dispose, if still running.
   */
  spawnWorker(args?: string[]): Promise<Deno.ChildProcess>;
  /** A connection to the database as `role` (created by the caller). */
  connectAs(role: string): postgres.Sql<Record<string, never>>;
}

const MOD = fileURLToPath(new URL("../mod.ts", import.meta.url));

/** Creates a database named after `prefix` and starts a worker on it. */
export async function startBridge(
  prefix: string,
  workerOverrides: Partial<WorkerConfig> = {},
): Promise<Bridge> {
  const env = testbedEnv();
  const database = `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin`create database ${admin(database)}`;
  await admin.end();
  const url = new URL(env.DATABASE_URL);
  url.pathname = `/${database}`;
  const sql = postgres(url.href, { max: 8, onnotice: () => {} });
  const workers: Worker[] = [];
  // Quiet by default: tests provoke failures on purpose. OMNI_KUBE_LOG_LEVEL=debug shows every call.
  const log = createLogger((Deno.env.get("OMNI_KUBE_LOG_LEVEL") as "debug") ?? "error");
  const startWorker = async (overrides: Partial<WorkerConfig> = {}) => {
    const worker = new Worker({
      ...DEFAULT_WORKER_CONFIG,
      databaseUrl: url.href,
      kubeconfig: env.KUBECONFIG,
      ...overrides,
    }, log);
    await worker.start();
    workers.push(worker);
    return worker;
  };
  await startWorker(workerOverrides);
  const processes: Deno.ChildProcess[] = [];
  const spawnWorker = async (args: string[] = []) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MOD, "start", ...args],
      env: {
        DATABASE_URL: url.href,
        KUBECONFIG: env.KUBECONFIG,
        OMNI_KUBE_LOG_LEVEL: Deno.env.get("OMNI_KUBE_LOG_LEVEL") ?? "error",
      },
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    processes.push(child);
    let exited = false;
    child.status.then(() => exited = true);
    for (let i = 0; i < 300 && !exited; i++) {
      // The worker registers with its process id once the shim is installed.
      const [{ alive }] = await sql`
        select coalesce(bool_or(omni_kube._worker_alive(id)), false) as alive
          from omni_kube.workers where pid = ${child.pid}`;
      if (alive) return child;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(exited ? "the worker process exited at start" : "no worker within 30 s");
  };
  const connections: postgres.Sql<Record<string, never>>[] = [];
  return {
    sql,
    url: url.href,
    database,
    workers,
    startWorker,
    spawnWorker,
    connectAs(role: string) {
      const as = new URL(url.href);
      as.username = role;
      const connection = postgres(as.href, { max: 4, onnotice: () => {} });
      connections.push(connection);
      return connection;
    },
    async [Symbol.asyncDispose]() {
      for (const worker of workers) await worker.stop();
      for (const child of processes) {
        try {
          child.kill("SIGKILL");
        } catch { /* it had exited */ }
        await child.status;
      }
      for (const connection of connections) await connection.end();
      await sql.end();
      const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      await admin`drop database ${admin(database)} with (force)`;
      await admin.end();
    },
  };
}
