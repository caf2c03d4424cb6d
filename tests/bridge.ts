/**
 * A bridge for one test file: a fresh database in the shared test bed, the shim installed, and a
 * worker serving it in this process, whose default cluster is the test bed's (admin kubeconfig).
 *
 * @module
 */
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
  /** A connection to the database as `role` (created by the caller). */
  connectAs(role: string): postgres.Sql<Record<string, never>>;
}

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
  const connections: postgres.Sql<Record<string, never>>[] = [];
  return {
    sql,
    url: url.href,
    database,
    workers,
    startWorker,
    connectAs(role: string) {
      const as = new URL(url.href);
      as.username = role;
      const connection = postgres(as.href, { max: 4, onnotice: () => {} });
      connections.push(connection);
      return connection;
    },
    async [Symbol.asyncDispose]() {
      for (const worker of workers) await worker.stop();
      for (const connection of connections) await connection.end();
      await sql.end();
      const admin = postgres(env.DATABASE_URL, { max: 1, onnotice: () => {} });
      await admin`drop database ${admin(database)} with (force)`;
      await admin.end();
    },
  };
}
