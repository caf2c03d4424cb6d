/**
 * `deno task dev`: starts the test bed and the worker for local development, writes `.dev/env`,
 * and stays in the foreground.
 *
 * The worker is restarted when it exits (after a short backoff), so a crash or a `kill` of it
 * leaves the database and the cluster as they were; PostgreSQL or a process of the cluster exiting
 * ends the session. Ctrl-C or SIGTERM stops the worker, then the rest, and removes the state unless
 * `--keep` keeps it for the next run. `deno task dev --help` lists the flags.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { formatEnvFile, shellQuote, startTestbed, type Testbed } from "./mod.ts";
import { EMBEDDED_MAJORS } from "./postgres.ts";
import { freePort, logTail, type ManagedProcess, spawnProcess } from "./process.ts";

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/** What `deno task dev` was asked to do. */
export interface DevOptions {
  /** Where the state is kept between runs; undefined: a temporary directory, removed on exit. */
  keepDir?: string;
  /** PostgreSQL major; undefined: the test bed's default. */
  postgresMajor?: number;
  /** The file of variables to source. */
  envFile: string;
}

const PG_RANGE = `${EMBEDDED_MAJORS[0]} to ${EMBEDDED_MAJORS[EMBEDDED_MAJORS.length - 1]}`;

export const DEFAULT_KEEP_DIR = join(PROJECT_DIR, ".dev", "state");
export const DEFAULT_ENV_FILE = join(PROJECT_DIR, ".dev", "env");

/** The status file's name in the state directory. */
export const STATUS_FILE_NAME = "dev.json";

/** The variable in the env file naming the status file. */
export const STATUS_ENV_NAME = "OMNI_KUBE_DEV_STATUS";

export const USAGE = `Usage: deno task dev [--keep [DIR]] [--pg N] [--env-file PATH]

Starts PostgreSQL, Kubernetes (etcd, kube-apiserver, controllers, scheduler, KWOK nodes), a
second cluster (b: a kube-apiserver only) and the worker, serving both clusters, on loopback,
writes the variables to source, and stays in the foreground; Ctrl-C stops everything. The worker
is restarted when it exits.

  --keep [DIR]     keep the database and the cluster's state in DIR between runs, and pick up
                   what an earlier run left there (default DIR: .dev/state); without --keep the
                   state is temporary and removed on exit
  --pg N           PostgreSQL major version, ${PG_RANGE} (default: $OMNI_KUBE_PG, else the
                   test bed's)
  --env-file PATH  where to write the variables to source (default: .dev/env)
  -h, --help       show this help`;

/** A bad flag or value: the message says which; the caller prints it with the usage hint. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Parses the command line. Relative paths are taken from `baseDir` (where the user ran
 * `deno task`, which itself runs in the project directory). Returns undefined for `--help`.
 */
export function parseDevArgs(args: string[], baseDir: string): DevOptions | undefined {
  // parseArgs has no flag with an optional value: `--keep` followed by nothing or by another flag
  // gets the default directory.
  const normalised = args.map((arg, i) =>
    arg === "--keep" && (i + 1 >= args.length || args[i + 1].startsWith("-"))
      ? `--keep=${DEFAULT_KEEP_DIR}`
      : arg
  );
  let values;
  try {
    ({ values } = parseArgs({
      args: normalised,
      options: {
        keep: { type: "string" },
        pg: { type: "string" },
        "env-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const path = (flag: string, value: string | undefined, fallback?: string) => {
    if (value === undefined) return fallback;
    if (value === "") throw new UsageError(`${flag} needs a path`);
    return resolve(baseDir, value);
  };
  let postgresMajor: number | undefined;
  if (values.pg !== undefined) {
    postgresMajor = /^\d+$/.test(values.pg) ? Number(values.pg) : NaN;
    if (!EMBEDDED_MAJORS.includes(postgresMajor)) {
      throw new UsageError(
        `--pg ${values.pg}: not a PostgreSQL major the test bed runs (${
          EMBEDDED_MAJORS.join(", ")
        })`,
      );
    }
  }
  return {
    keepDir: path("--keep", values.keep),
    postgresMajor,
    envFile: path("--env-file", values["env-file"], DEFAULT_ENV_FILE)!,
  };
}

/** How long to wait before restarting the worker. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** A worker that ran at least this long counts as having served: the delay starts over. */
  resetAfterMs: number;
}

export const WORKER_BACKOFF: Backoff = { initialMs: 500, maxMs: 5_000, resetAfterMs: 30_000 };

/**
 * The delay before the next restart, given the previous delay (undefined at the first exit) and
 * how long the worker that just exited ran: doubling up to the maximum while it keeps failing fast.
 */
export function restartDelay(
  previousMs: number | undefined,
  ranMs: number,
  backoff: Backoff = WORKER_BACKOFF,
): number {
  if (previousMs === undefined || ranMs >= backoff.resetAfterMs) return backoff.initialMs;
  return Math.min(previousMs * 2, backoff.maxMs);
}

/** `signal SIGKILL` or `code 1`. */
export function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

function log(message: string) {
  console.error(`[dev] ${message}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `path` whole or not at all, so a reader never sees half of it. */
async function writeAtomically(path: string, content: string, mode = 0o600): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(temporary, content, { mode });
  await Deno.rename(temporary, path);
}

/** The worker process (`deno task start`) of the session, restarted whenever it exits. */
class WorkerSupervisor {
  readonly #testbed: Testbed;
  readonly #httpPort: number;
  readonly #onChange: () => Promise<void>;
  #current: ManagedProcess | undefined;
  #serving = false;
  #restarts = 0;
  #stopping = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #fail: (error: Error) => void = () => {};
  /** Resolves if supervising fails (a worker cannot even be spawned): the session must end. */
  readonly failed = new Promise<Error>((resolve) => this.#fail = resolve);

  constructor(testbed: Testbed, httpPort: number, onChange: () => Promise<void>) {
    this.#testbed = testbed;
    this.#httpPort = httpPort;
    this.#onChange = onChange;
  }

  get pid(): number | undefined {
    return this.#current?.pid;
  }
  get serving(): boolean {
    return this.#serving;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get logFile(): string {
    return join(this.#testbed.dir, "worker.log");
  }

  #spawn(): Promise<ManagedProcess> {
    return spawnProcess("worker", Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        join(PROJECT_DIR, "mod.ts"),
        "start",
        "--http-host=127.0.0.1",
        `--http-port=${this.#httpPort}`,
      ],
      env: {
        DATABASE_URL: this.#testbed.env.DATABASE_URL,
        // A context per cluster, so that the worker serves both by name; `a` is current, its
        // default cluster.
        KUBECONFIG: this.#testbed.env.KUBE_FLEET_KUBECONFIG,
      },
      logFile: this.logFile,
      echo: true,
    });
  }

  /**
   * Waits until `worker` itself is registered and alive (not merely some worker: the one it
   * replaces may look alive for a moment after it was killed). Returns false if it exits first;
   * throws if it does not serve within `timeoutMs`.
   */
  async #untilServing(worker: ManagedProcess, timeoutMs = 60_000): Promise<boolean> {
    const sql = postgres(this.#testbed.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    let exited: Deno.CommandStatus | undefined;
    worker.exited.then((status) => exited = status);
    const deadline = Date.now() + timeoutMs;
    try {
      while (true) {
        if (exited) return false;
        // The worker installs the shim first: until then neither the table nor the function exist.
        const alive = await sql<{ alive: boolean }[]>`
          select coalesce(bool_or(omni_kube._worker_alive(id)), false) as alive
            from omni_kube.workers where pid = ${worker.pid}`.then(
          ([row]) => row.alive,
          () => false,
        );
        if (alive) return true;
        if (Date.now() > deadline) {
          throw new Error(
            `the worker did not serve within ${timeoutMs / 1000} s. ` +
              `End of ${worker.logFile}:\n${await logTail(worker.logFile)}`,
          );
        }
        await sleep(200);
      }
    } finally {
      await sql.end();
    }
  }

  /** Starts the first worker and waits until it serves; throws (having stopped it) if it does not. */
  async start(): Promise<void> {
    const worker = this.#current = await this.#spawn();
    let serving: boolean;
    try {
      serving = await this.#untilServing(worker);
    } catch (error) {
      await worker.stop("SIGTERM", 15_000);
      throw error;
    }
    if (!serving) {
      const status = await worker.exited;
      throw new Error(
        `the worker exited (${describeExit(status)}) before serving. ` +
          `End of ${worker.logFile}:\n${await logTail(worker.logFile)}`,
      );
    }
    this.#serving = true;
    this.#loop = this.#superviseFrom(worker, Date.now()).catch((error) => {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    });
  }

  async #superviseFrom(first: ManagedProcess, firstStarted: number): Promise<void> {
    let worker = first;
    let started = firstStarted;
    let delay: number | undefined;
    while (true) {
      const status = await worker.exited;
      this.#serving = false;
      // On Ctrl-C the terminal signals the whole process group, the worker too: its exit is part
      // of the stop if our own signal arrives within a moment.
      if (!this.#stopping) await sleep(200);
      if (this.#stopping) return;
      delay = restartDelay(delay, Date.now() - started);
      log(`worker exited (${describeExit(status)}); restarting in ${delay / 1000} s`);
      await this.#onChange().catch(() => {});
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, delay);
      });
      this.#wake = undefined;
      if (this.#stopping) return;
      worker = this.#current = await this.#spawn();
      started = Date.now();
      this.#restarts++;
      try {
        // Exited before serving: the loop's next turn says so and waits longer.
        if (!await this.#untilServing(worker)) continue;
      } catch (error) {
        if (this.#stopping) return;
        // Still not serving after a minute: stop it, and the loop restarts it after the backoff.
        log((error as Error).message.split("\n")[0]);
        await worker.stop("SIGTERM", 15_000);
        continue;
      }
      if (this.#stopping) return;
      this.#serving = true;
      log(`worker serving again (pid ${worker.pid}; restart ${this.#restarts})`);
      await this.#onChange().catch(() => {});
    }
  }

  /** Stops the worker and its supervision; a restart being waited for does not happen. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#current?.stop("SIGTERM", 15_000);
    await this.#loop;
    // The loop may have spawned a worker between the two lines above.
    await this.#current?.stop("SIGTERM", 15_000);
  }
}

/** What the status file says: where everything is, for tools and tests. */
interface DevStatus {
  pid: number;
  stateDir: string;
  kept: boolean;
  envFile: string;
  worker: { pid?: number; serving: boolean; restarts: number; http: string; log: string };
  processes: { name: string; pid: number; log: string }[];
}

/** Whether `pid` is a live `deno task dev` (its own pid is not one; a reused pid is not either). */
async function isDevProcess(pid: number): Promise<boolean> {
  if (pid === Deno.pid) return false;
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes("testbed/dev.ts");
  } catch {
    return false;
  }
}

/** The lock file of a kept directory: the pid of the `deno task dev` using it. */
const LOCK_FILE_NAME = "dev.lock";

/**
 * Takes a kept directory for this session, refusing one that a running `deno task dev` holds (a
 * lock left by one that died is taken over). Returns the function that releases it.
 */
async function lockStateDir(dir: string): Promise<() => Promise<void>> {
  // Parents as any directory; as root, PostgreSQL's unprivileged user must traverse them.
  await Deno.mkdir(dirname(dir), { recursive: true });
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, LOCK_FILE_NAME);
  const release = () => Deno.remove(lock).catch(() => {});
  try {
    await Deno.writeTextFile(lock, `${Deno.pid}\n`, { createNew: true, mode: 0o600 });
    return release;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const holder = Number((await Deno.readTextFile(lock).catch(() => "")).trim());
  if (Number.isInteger(holder) && await isDevProcess(holder)) {
    throw new Error(
      `${dir} is in use by another deno task dev (pid ${holder}); stop it first, or keep ` +
        "this run's state elsewhere (--keep DIR)",
    );
  }
  await Deno.writeTextFile(lock, `${Deno.pid}\n`, { mode: 0o600 });
  return release;
}

/** What `deno task dev` prints once everything serves: where each thing is. */
function banner(
  testbed: Testbed,
  worker: WorkerSupervisor,
  httpPort: number,
  kept: boolean,
  envFile: string,
): string {
  const [etcd, apiserver, ...others] = testbed.kube.processes;
  const siblings = testbed.kube.siblings;
  const rows: [string, string][] = [
    [
      "PostgreSQL",
      `${testbed.env.DATABASE_URL}  (pid ${testbed.postgres.process.pid}, socket ${testbed.postgres.socketDir})`,
    ],
    ["etcd", `${testbed.kube.etcdUrl}  (pid ${etcd.pid})`],
    ["kube-apiserver", `${testbed.env.KUBE_SERVER}  (pid ${apiserver.pid}; cluster a)`],
    ...siblings.map(({ name, server, process }): [string, string] => [
      process.name,
      `${server}  (pid ${process.pid}; cluster ${name}, API server only)`,
    ]),
    ...others.filter((p) => !siblings.some((sibling) => sibling.process === p))
      .map((p): [string, string] => [p.name, `(pid ${p.pid})`]),
    [
      "worker",
      `deno task start  (pid ${worker.pid}; http://127.0.0.1:${httpPort}/metrics; ` +
      "restarted when it exits)",
    ],
    [
      "state",
      `${testbed.dir}  (${kept ? "kept between runs" : "removed on exit"}; logs: *.log; ` +
      `status: ${STATUS_FILE_NAME})`,
    ],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const source = envFile === DEFAULT_ENV_FILE ? ".dev/env" : envFile;
  return [
    "",
    "omni_kube development environment",
    ...rows.map(([label, text]) => `  ${label.padEnd(width)}${text}`),
    "",
    `  source ${source}`,
    `  psql "$DATABASE_URL" -c "select omni_kube.api('/api/v1/namespaces')"`,
    `  kubectl --kubeconfig "$KUBECONFIG" get namespaces`,
    `  kubectl --kubeconfig "$KUBE_FLEET_KUBECONFIG" --context b get namespaces`,
    "",
    `Ctrl-C stops everything${
      kept ? "; the database and the cluster stay for the next --keep" : ""
    }.`,
  ].join("\n");
}

async function main(args: string[]): Promise<number> {
  let options: DevOptions | undefined;
  try {
    options = parseDevArgs(args, Deno.env.get("INIT_CWD") ?? Deno.cwd());
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`deno task dev: ${error.message}\n(deno task dev --help lists the flags)`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const { keepDir } = options;
  const unlock = keepDir ? await lockStateDir(keepDir) : undefined;

  let signalled: Deno.Signal | undefined;
  const stopped = new Promise<Deno.Signal>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => {
        if (signalled) {
          log(`${signal}: already stopping`);
          return;
        }
        signalled = signal;
        resolve(signal);
      });
    }
  });

  log(
    "starting PostgreSQL, Kubernetes (etcd, kube-apiserver, controllers, scheduler, KWOK), a " +
      "second cluster's kube-apiserver and the worker (the first run builds the binaries)" +
      (keepDir ? `; state kept in ${keepDir}` : ""),
  );
  try {
    return await serve(options, stopped, () => signalled);
  } finally {
    await unlock?.();
  }
}

/** Runs the session once the flags are read and the kept directory (if any) is ours. */
async function serve(
  { keepDir, envFile, postgresMajor }: DevOptions,
  stopped: Promise<Deno.Signal>,
  signalled: () => Deno.Signal | undefined,
): Promise<number> {
  const testbed = await startTestbed({ stateDir: keepDir, postgresMajor });
  const statusFile = join(testbed.dir, STATUS_FILE_NAME);
  const httpPort = freePort();
  const coreProcesses = () => [testbed.postgres.process, ...testbed.kube.processes];
  const writeStatus = () => {
    const status: DevStatus = {
      pid: Deno.pid,
      stateDir: testbed.dir,
      kept: keepDir !== undefined,
      envFile,
      worker: {
        pid: supervisor.pid,
        serving: supervisor.serving,
        restarts: supervisor.restarts,
        http: `http://127.0.0.1:${httpPort}`,
        log: supervisor.logFile,
      },
      processes: coreProcesses().map((p) => ({ name: p.name, pid: p.pid, log: p.logFile })),
    };
    return writeAtomically(statusFile, JSON.stringify(status, null, 2) + "\n");
  };
  const supervisor = new WorkerSupervisor(testbed, httpPort, writeStatus);
  let exitCode = 0;
  // Another session without --keep may be using the same env file until this one writes it.
  let wroteEnvFile = false;
  try {
    if (signalled()) {
      log(`${signalled()}: stopping`);
      return 0;
    }
    await supervisor.start();
    await writeStatus();
    await writeAtomically(
      envFile,
      formatEnvFile(testbed.env) + `export ${STATUS_ENV_NAME}=${shellQuote(statusFile)}\n`,
    );
    wroteEnvFile = true;
    console.log(banner(testbed, supervisor, httpPort, keepDir !== undefined, envFile));

    const coreExit = Promise.race(
      coreProcesses().map((p) => p.exited.then((status) => ({ process: p, status }))),
    );
    const reason = await Promise.race([stopped, coreExit, supervisor.failed]);
    if (reason instanceof Error) {
      log(`the worker cannot be restarted: ${reason.message}; stopping the rest`);
      exitCode = 1;
    } else if (typeof reason === "object") {
      // A terminal's Ctrl-C reaches every process of the group: give our own signal a moment.
      await Promise.race([stopped, sleep(200)]);
    }
    if (signalled()) {
      log(`${signalled()}: stopping the worker, then PostgreSQL and the cluster`);
    } else if (typeof reason === "object" && !(reason instanceof Error)) {
      log(
        `${reason.process.name} exited unexpectedly (${describeExit(reason.status)}); ` +
          `stopping the rest. Its log: ${reason.process.logFile}\n` +
          (await logTail(reason.process.logFile, 15)),
      );
      exitCode = 1;
    }
  } finally {
    await supervisor.stop();
    if (wroteEnvFile) await Deno.remove(envFile).catch(() => {});
    await Deno.remove(statusFile).catch(() => {});
    await testbed.stop();
    log(keepDir ? `stopped; state kept in ${testbed.dir}` : "stopped; temporary state removed");
  }
  return exitCode;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    code = 1;
  }
  Deno.exit(code);
}
