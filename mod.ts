/**
 * omni_kube bridge: SQL in PostgreSQL calls the Kubernetes API through a queue served by this
 * worker.
 *
 * Run it: `deno run -A mod.ts [start|migrate] [--help]`. Use it as a library:
 *
 * ```ts
 * import { Worker } from "./mod.ts";
 * const worker = new Worker({ ...DEFAULT_WORKER_CONFIG, databaseUrl: Deno.env.get("DATABASE_URL")! });
 * await worker.start();
 * ```
 *
 * @module
 */
export { DEFAULT_WORKER_CONFIG, Worker, type WorkerConfig } from "./lib/worker.ts";
export {
  bundledShim,
  describeMigration,
  IncompatibleDatabase,
  migrate,
  type MigrationReport,
  pendingMigrations,
} from "./lib/migrate.ts";
export { RELEASE } from "./lib/version.ts";
export { type WorkerMetrics } from "./lib/metrics.ts";
export { type Logger } from "./lib/observe.ts";
export {
  type DefaultCluster,
  defaultCluster,
  kubeconfigCluster,
  podServiceAccount,
} from "./lib/credentials.ts";
export { type HttpMethod, type KubeTarget } from "./lib/kube/client.ts";

if (import.meta.main) {
  const { main } = await import("./lib/cli.ts");
  Deno.exit(await main(Deno.args));
}
