/**
 * A throwaway PostgreSQL cluster from the machine's own binaries, listening on a unix socket and a
 * free loopback port, removed when stopped.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";

/** A running throwaway cluster. The superuser `postgres` connects without a password. */
export interface PostgresServer {
  /** Superuser connection URL over TCP, e.g. `postgres://postgres@127.0.0.1:5433/postgres`. */
  readonly url: string;
  readonly port: number;
  /** Directory holding the unix socket (`host` for libpq). */
  readonly socketDir: string;
  readonly dataDir: string;
  readonly bindir: string;
  readonly process: ManagedProcess;
  /** Fast shutdown (clients are disconnected). */
  stop(): Promise<void>;
  /** Fast shutdown, then the same cluster again on the same port (for fault tests). */
  restart(): Promise<void>;
}

const SUPERUSER = "postgres";

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && (info.mode ?? 0o111) & 0o111 ? true : false;
  } catch {
    return false;
  }
}

async function hasServerBinaries(dir: string): Promise<boolean> {
  return await isExecutable(join(dir, "initdb")) && await isExecutable(join(dir, "postgres")) &&
    await isExecutable(join(dir, "pg_ctl"));
}

/**
 * The directory of `initdb` and `postgres`: `$PG_BINDIR`, else where `initdb` on PATH really lives
 * (Debian links it from elsewhere), else the newest `/usr/lib/postgresql/N/bin`.
 */
export async function findPostgresBindir(): Promise<string> {
  const explicit = Deno.env.get("PG_BINDIR");
  if (explicit) {
    if (await hasServerBinaries(explicit)) return explicit;
    throw new Error(`PG_BINDIR=${explicit} does not contain initdb, pg_ctl and postgres`);
  }
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    const initdb = join(dir, "initdb");
    if (await isExecutable(initdb)) {
      const real = join(await Deno.realPath(initdb), "..");
      if (await hasServerBinaries(real)) return real;
    }
  }
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch { /* not a Debian layout */ }
  for (const version of versions.sort((a, b) => b - a)) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (await hasServerBinaries(dir)) return dir;
  }
  throw new Error(
    "PostgreSQL server binaries not found (looked at $PG_BINDIR, initdb on PATH and " +
      "/usr/lib/postgresql/*/bin). Install them, e.g. 'apt-get install postgresql', " +
      "or set PG_BINDIR to the directory holding initdb and postgres.",
  );
}

/** uid and gid of `name` from /etc/passwd. */
async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`OS user "${name}" not found in /etc/passwd; set PG_OS_USER to another one`);
}

/**
 * initdb refuses to run as root, so as root the cluster runs as an unprivileged user:
 * `$PG_OS_USER`, default `nobody`.
 */
async function serverIdentity(): Promise<{ uid: number; gid: number } | undefined> {
  if (Deno.uid() !== 0) return undefined;
  return await lookupUser(Deno.env.get("PG_OS_USER") ?? "nobody");
}

async function run(command: string, args: string[], options: Deno.CommandOptions = {}) {
  const output = await new Deno.Command(command, { args, ...options, stdin: "null" }).output();
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    throw new Error(`${command} ${args.join(" ")} failed (exit ${output.code}):\n${text.trim()}`);
  }
}

/** Settings for a test cluster: speed over durability, room for many sessions. */
const SERVER_SETTINGS: Record<string, string> = {
  listen_addresses: "127.0.0.1",
  max_connections: "400",
  shared_buffers: "128MB",
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  log_min_messages: "warning",
  log_line_prefix: "%m [%p] %q%u@%d ",
};

/**
 * Creates and starts a cluster under `baseDir` (which the caller removes). Fails if the binaries,
 * the unprivileged user or dblink are missing.
 */
export async function startPostgres(baseDir: string): Promise<PostgresServer> {
  const bindir = await findPostgresBindir();
  const owner = await serverIdentity();
  const dataDir = join(baseDir, "pgdata");
  const socketDir = join(baseDir, "pgsocket");
  const logFile = join(baseDir, "postgres.log");
  await Deno.mkdir(dataDir, { mode: 0o700 });
  await Deno.mkdir(socketDir, { mode: 0o755 });
  if (owner) {
    // The unprivileged server user must reach its directories through baseDir.
    await Deno.chmod(baseDir, 0o711);
    await Deno.chown(dataDir, owner.uid, owner.gid);
    await Deno.chown(socketDir, owner.uid, owner.gid);
  }
  const asOwner = owner ? { uid: owner.uid, gid: owner.gid, cwd: baseDir } : {};
  await run(join(bindir, "initdb"), [
    "--pgdata",
    dataDir,
    "--username",
    SUPERUSER,
    "--auth",
    "trust",
    "--encoding",
    "UTF8",
    "--no-locale",
    "--no-sync",
  ], asOwner);

  const port = freePort();
  const settings = Object.entries(SERVER_SETTINGS).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const launch = async () => {
    const process = await spawnProcess("postgres", join(bindir, "postgres"), {
      args: ["-D", dataDir, "-p", String(port), "-k", socketDir, ...settings],
      logFile,
      ...asOwner,
    });
    try {
      await waitUntilReady(process, "accepting connections", async () => {
        const probe = await new Deno.Command(join(bindir, "pg_isready"), {
          args: ["-h", "127.0.0.1", "-p", String(port), "-U", SUPERUSER, "-d", "postgres"],
          stdout: "null",
          stderr: "null",
        }).output();
        return probe.success;
      }, { timeoutMs: 60_000 });
    } catch (error) {
      await process.stop("SIGINT", 15_000);
      throw error;
    }
    return process;
  };
  let process = await launch();
  const server: PostgresServer = {
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`,
    port,
    socketDir,
    dataDir,
    bindir,
    get process() {
      return process;
    },
    // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect.
    stop: () => process.stop("SIGINT", 15_000),
    async restart() {
      await process.stop("SIGINT", 15_000);
      process = await launch();
    },
  };
  try {
    await assertDblinkAvailable(server);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

async function assertDblinkAvailable(server: PostgresServer): Promise<void> {
  const output = await new Deno.Command(join(server.bindir, "psql"), {
    args: [
      server.url,
      "-XAtc",
      "select count(*) from pg_available_extensions where name = 'dblink'",
    ],
    stdin: "null",
  }).output();
  const count = new TextDecoder().decode(output.stdout).trim();
  if (!output.success || count !== "1") {
    throw new Error(
      `the dblink extension is not available in ${server.bindir}/..: install PostgreSQL's ` +
        "contrib modules (Debian: postgresql-contrib, included in postgresql-15)",
    );
  }
}
