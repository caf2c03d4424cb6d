/**
 * Command line: flags and environment variables into a config, then `start` or `migrate`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect } from "./db.ts";
import { describeMigration, IncompatibleDatabase, migrate } from "./migrate.ts";
import { DEFAULT_WORKER_CONFIG, Worker, type WorkerConfig } from "./worker.ts";
import { logger } from "./observe.ts";
import { statusReport } from "./status.ts";
import { normalizeServer } from "./kube/client.ts";
import type { ExplicitServers } from "./worker/call.ts";

/** Port of the health and metrics endpoints when none is configured. */
export const DEFAULT_HTTP_PORT = 8080;

/** Command-line help. */
export const USAGE = `omni_kube worker

Usage: deno task start [flags]      run the worker (applies pending migrations first)
       deno task migrate [flags]    only apply pending migrations
       deno task status [flags]     queue depth, workers and recent failures

Flags (environment variable in brackets):
  --database-url URL    PostgreSQL to serve [DATABASE_URL] (required)
  --concurrency N       calls run at once [OMNI_KUBE_CONCURRENCY] (default ${DEFAULT_WORKER_CONFIG.concurrency})
  --watch-concurrency N  watches run at once, apart from calls [OMNI_KUBE_WATCH_CONCURRENCY] (default ${DEFAULT_WORKER_CONFIG.watchConcurrency})
  --async-concurrency N  api_async() calls run at once, apart from the others [OMNI_KUBE_ASYNC_CONCURRENCY] (default ${DEFAULT_WORKER_CONFIG.asyncConcurrency})
  --role-concurrency N  calls of one role run at once [OMNI_KUBE_ROLE_CONCURRENCY] (default half of --concurrency)
  --role-watch-concurrency N  watches of one role run at once [OMNI_KUBE_ROLE_WATCH_CONCURRENCY] (default ${DEFAULT_WORKER_CONFIG.roleWatchConcurrency})
  --role-queue-limit N  requests one role may have queued [OMNI_KUBE_ROLE_QUEUE_LIMIT] (default ${DEFAULT_WORKER_CONFIG.roleQueueLimit})
  --retention SECONDS   keep finished requests this long [OMNI_KUBE_RETENTION] (default ${DEFAULT_WORKER_CONFIG.retentionSeconds})
  --http-port N         port of /healthz, /readyz and /metrics [OMNI_KUBE_HTTP_PORT] (default ${DEFAULT_HTTP_PORT}; 0: any)
  --http-host ADDR      address to serve them on [OMNI_KUBE_HTTP_HOST] (default ${DEFAULT_WORKER_CONFIG.httpHostname})
  --shutdown-grace SEC  on SIGTERM, calls in flight get this long to finish [OMNI_KUBE_SHUTDOWN_GRACE] (default ${
  DEFAULT_WORKER_CONFIG.shutdownGraceMs / 1000
})
  --max-response-bytes N  bytes of a response, stream or watch one call keeps [OMNI_KUBE_MAX_RESPONSE_BYTES] (default ${DEFAULT_WORKER_CONFIG.maxResponseBytes})
  --max-watch-events N  events one watch keeps [OMNI_KUBE_MAX_WATCH_EVENTS] (default ${DEFAULT_WORKER_CONFIG.maxWatchEvents})
  --max-request-timeout SEC  longest omni_kube.request_timeout served [OMNI_KUBE_MAX_REQUEST_TIMEOUT] (default ${DEFAULT_WORKER_CONFIG.maxRequestTimeoutSeconds})
  --kubeconfig FILES    kubeconfig files, ':'-separated, merged as kubectl does [KUBECONFIG] (default ~/.kube/config)
  --contexts A,B        the kubeconfig contexts served as named clusters [OMNI_KUBE_CONTEXTS] (default all)
  --default-context NAME|none  the worker's own cluster outside a pod [OMNI_KUBE_DEFAULT_CONTEXT] (default the current context; none: calls must name a cluster or a server)
  --explicit-servers any|none|URL,...  servers calls may name in SQL (server =>) [OMNI_KUBE_EXPLICIT_SERVERS] (default any)
  --no-migrate          do not apply migrations at start
  --help                this text

A call over a --max-* limit fails: its caller gets SQLSTATE OKL01 (response, stream, watch) or
OKL02 (request timeout); an enqueue past --role-queue-limit fails with OKL03.
The worker's own cluster (for calls naming no server or credentials) is the pod's service account
inside a pod, else the current context of the kubeconfig. Every context of the kubeconfig (or
those of --contexts) is served as a named cluster (cluster => 'name'), and inside a pod its
service account as 'in-cluster'; roles use one once granted it (omni_kube.grant_cluster).
Log level: OMNI_KUBE_LOG_LEVEL=debug|info|warn|error (default info).`;

function integer(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === "") return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`${name} must be an integer of at least ${min}, got "${value}"`);
  }
  return n;
}

/** `{ [key]: n }` for a setting given as an integer of at least 1; `{}` when not given. */
function optionalInteger<K extends string>(
  key: K,
  name: string,
  value: string | undefined,
): Partial<Record<K, number>> {
  if (value === undefined || value === "") return {};
  return { [key]: integer(name, value, 0) } as Partial<Record<K, number>>;
}

/** `--explicit-servers`: `any`, `none`, or a comma-separated list of API server URLs. */
export function parseExplicitServers(value: string | undefined): ExplicitServers {
  const text = (value ?? "any").trim();
  if (text === "any" || text === "none") return text;
  const servers = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) {
    throw new Error(`--explicit-servers must be any, none or a list of https URLs, got "${value}"`);
  }
  return servers.map((server) => {
    try {
      return normalizeServer(server).toLowerCase();
    } catch (error) {
      throw new Error(`--explicit-servers: ${error instanceof Error ? error.message : error}`);
    }
  });
}

function optionalString<K extends string>(key: K, value: string | undefined) {
  return value ? { [key]: value } as Record<K, string> : {};
}

/** `--contexts a,b`: the names, none empty. */
function contextsOf(value: string | undefined): { contexts?: string[] } {
  if (value === undefined || value === "") return {};
  const contexts = value.split(",").map((c) => c.trim());
  if (contexts.some((c) => c === "")) {
    throw new Error(`--contexts must be a comma-separated list of context names, got "${value}"`);
  }
  return { contexts };
}

const COMMANDS = ["start", "migrate", "status", "help"] as const;
/** One of the worker's commands. */
export type Command = typeof COMMANDS[number];

function isCommand(name: string): name is Command {
  return (COMMANDS as readonly string[]).includes(name);
}

/** Parses `args` and `env` into a command and a worker config. */
export function parseCommand(
  args: string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): { command: Command; config: WorkerConfig } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "database-url": { type: "string" },
      concurrency: { type: "string" },
      "watch-concurrency": { type: "string" },
      "async-concurrency": { type: "string" },
      "role-concurrency": { type: "string" },
      "role-watch-concurrency": { type: "string" },
      "role-queue-limit": { type: "string" },
      retention: { type: "string" },
      "no-migrate": { type: "boolean" },
      kubeconfig: { type: "string" },
      contexts: { type: "string" },
      "default-context": { type: "string" },
      "explicit-servers": { type: "string" },
      "http-port": { type: "string" },
      "http-host": { type: "string" },
      "shutdown-grace": { type: "string" },
      "max-response-bytes": { type: "string" },
      "max-watch-events": { type: "string" },
      "max-request-timeout": { type: "string" },
      help: { type: "boolean" },
    },
  });
  const command = values.help ? "help" : positionals[0] ?? "start";
  if (!isCommand(command)) {
    throw new Error(`unknown command "${command}"; expected ${COMMANDS.join(", ")} (see --help)`);
  }
  const databaseUrl = values["database-url"] ?? env("DATABASE_URL") ?? "";
  if (!databaseUrl && command !== "help") {
    throw new Error("no database: set DATABASE_URL or pass --database-url (see --help)");
  }
  /** The integer flag `--name`, else the environment variable `variable`, else `fallback`. */
  const count = (name: string, variable: string, fallback: number, min = 1) => {
    const flag = (values as Record<string, string | boolean | undefined>)[name];
    return integer(`--${name}`, typeof flag === "string" ? flag : env(variable), fallback, min);
  };
  const defaults = DEFAULT_WORKER_CONFIG;
  return {
    command,
    config: {
      ...defaults,
      databaseUrl,
      concurrency: count("concurrency", "OMNI_KUBE_CONCURRENCY", defaults.concurrency),
      watchConcurrency: count(
        "watch-concurrency",
        "OMNI_KUBE_WATCH_CONCURRENCY",
        defaults.watchConcurrency,
      ),
      asyncConcurrency: count(
        "async-concurrency",
        "OMNI_KUBE_ASYNC_CONCURRENCY",
        defaults.asyncConcurrency,
      ),
      ...optionalInteger(
        "roleConcurrency",
        "--role-concurrency",
        values["role-concurrency"] ?? env("OMNI_KUBE_ROLE_CONCURRENCY"),
      ),
      roleWatchConcurrency: count(
        "role-watch-concurrency",
        "OMNI_KUBE_ROLE_WATCH_CONCURRENCY",
        defaults.roleWatchConcurrency,
      ),
      roleQueueLimit: count(
        "role-queue-limit",
        "OMNI_KUBE_ROLE_QUEUE_LIMIT",
        defaults.roleQueueLimit,
      ),
      retentionSeconds: count("retention", "OMNI_KUBE_RETENTION", defaults.retentionSeconds),
      migrate: !values["no-migrate"],
      ...optionalString("kubeconfig", values.kubeconfig ?? env("KUBECONFIG")),
      ...contextsOf(values.contexts ?? env("OMNI_KUBE_CONTEXTS")),
      ...optionalString(
        "defaultContext",
        values["default-context"] ?? env("OMNI_KUBE_DEFAULT_CONTEXT"),
      ),
      explicitServers: parseExplicitServers(
        values["explicit-servers"] ?? env("OMNI_KUBE_EXPLICIT_SERVERS"),
      ),
      httpPort: count("http-port", "OMNI_KUBE_HTTP_PORT", DEFAULT_HTTP_PORT, 0),
      httpHostname: values["http-host"] ?? env("OMNI_KUBE_HTTP_HOST") ?? defaults.httpHostname,
      shutdownGraceMs: 1000 *
        count("shutdown-grace", "OMNI_KUBE_SHUTDOWN_GRACE", defaults.shutdownGraceMs / 1000, 0),
      maxResponseBytes: count(
        "max-response-bytes",
        "OMNI_KUBE_MAX_RESPONSE_BYTES",
        defaults.maxResponseBytes,
      ),
      maxWatchEvents: count(
        "max-watch-events",
        "OMNI_KUBE_MAX_WATCH_EVENTS",
        defaults.maxWatchEvents,
      ),
      maxRequestTimeoutSeconds: count(
        "max-request-timeout",
        "OMNI_KUBE_MAX_REQUEST_TIMEOUT",
        defaults.maxRequestTimeoutSeconds,
      ),
    },
  };
}

/** Runs the command line; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommand(args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  const { command, config } = parsed;
  if (command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command === "status") {
    const sql = connect(config.databaseUrl, { max: 1, applicationName: "omni_kube_status" });
    try {
      console.log(await statusReport(sql));
    } finally {
      await sql.end();
    }
    return 0;
  }
  try {
    return command === "migrate" ? await migrateCommand(config) : await serve(config);
  } catch (error) {
    if (!(error instanceof IncompatibleDatabase)) throw error;
    console.error(`omni_kube: ${error.message}`);
    return 1;
  }
}

async function migrateCommand(config: WorkerConfig): Promise<number> {
  const sql = connect(config.databaseUrl, { max: 1, applicationName: "omni_kube_migrate" });
  try {
    console.log(describeMigration(await migrate(sql)));
  } finally {
    await sql.end();
  }
  return 0;
}

async function serve(config: WorkerConfig): Promise<number> {
  const worker = new Worker(config);
  await worker.start();
  if (worker.httpAddress) {
    logger.info("serving /healthz, /readyz and /metrics", {
      address: `${worker.httpAddress.hostname}:${worker.httpAddress.port}`,
    });
  }
  const signal = await new Promise<Deno.Signal>((resolve) => {
    for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => resolve(s));
  });
  logger.info("stopping", { signal });
  await worker.stop();
  return 0;
}
