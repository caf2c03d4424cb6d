/**
 * Installs and upgrades the SQL shim, in two layers (see sql/README.md):
 *
 * - the schema layer, `sql/schema/NNNN_*.sql`: applied once each, in name order, each in its own
 *   transaction, recorded in `omni_kube.schema_migrations` with its checksum;
 * - the function layer, the files `sql/functions/manifest.txt` lists: re-created as a whole, in
 *   the manifest's order, whenever its content or the release changes; its hash and the release
 *   are recorded in `omni_kube.release`.
 *
 * A schema file may have variants for older servers, `sql/schema/pgNN/<same name>`: on a server
 * of major NN or older the newest such variant is applied instead, recorded under the same name with
 * its own checksum; either checksum is accepted afterwards (a server upgraded in place keeps the
 * variant it was installed with). A later schema file brings every install to one shape.
 *
 * Refuses (with {@linkcode IncompatibleDatabase}) a database that a newer release upgraded, whose
 * applied schema files differ from this release's, or on a server older than
 * {@linkcode MIN_SERVER_VERSION}. Concurrent migrators serialise on an advisory lock taken in every
 * transaction.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { errorMessage } from "./observe.ts";
import type { Sql } from "./db.ts";
import { compareReleases, RELEASE } from "./version.ts";

const SQL_DIR = new URL("../sql/", import.meta.url);
const SCHEMA_FILE = /^\d{4}_[a-z0-9_]+\.sql$/;
/** A folder of schema variants: `pg14/` serves servers of major 14 and older. */
const VARIANT_DIR = /^pg(\d+)$/;
/** The oldest server this release installs on (`server_version_num`). */
export const MIN_SERVER_VERSION = 140000;
/** Arbitrary, fixed: serialises migrations across workers. */
const MIGRATION_LOCK = 7_301_975_422;

/**
 * Release 0.1.0 recorded its schema files by name only, in `omni_kube.migrations`. Its tables
 * are exactly the baseline's: a database with all of {@linkcode LEGACY_FILES} is adopted as
 * having the baseline.
 */
export const LEGACY_RELEASE = "0.1.0";
/** The schema files release 0.1.0 recorded, by name. */
export const LEGACY_FILES: readonly string[] = [
  "0001_queue.sql",
  "0002_api.sql",
  "0003_pod_credentials.sql",
  "0004_watch.sql",
  "0005_group_path.sql",
  "0006_resources_path.sql",
  "0007_path_with.sql",
  "0008_watch_path.sql",
  "0009_api_group_views.sql",
  "0010_group_resources.sql",
  "0011_resources.sql",
  "0012_resources_metadata.sql",
  "0013_resource_request.sql",
  "0014_resource_view.sql",
  "0015_resource_table.sql",
  "0016_resource_views.sql",
  "0017_resource_tables.sql",
  "0018_omni_kube_role.sql",
  "0019_yaml.sql",
  "0020_load_kubeconfig.sql",
  "0021_response_piece.sql",
  "0022_request_unlogged.sql",
];
const BASELINE = "0001_baseline.sql";

/** A schema-layer file. */
export interface SchemaFile {
  name: string;
  sql: string;
  /** sha256 of the file, hex. */
  checksum: string;
  /** Its forms for older servers, newest `maxMajor` first; see {@linkcode schemaForServer}. */
  variants?: SchemaVariant[];
  /** Set when this is a variant chosen for the server: its folder, e.g. `pg14`. */
  variant?: string;
}

/** A schema file's form for servers of major `maxMajor` and older (`sql/schema/pg<maxMajor>/`). */
export interface SchemaVariant {
  maxMajor: number;
  sql: string;
  checksum: string;
}

/** A function-layer file, by its path under `sql/functions/`. */
export interface FunctionFile {
  path: string;
  sql: string;
}

/** The SQL shim of one release. */
export interface Shim {
  release: string;
  schema: SchemaFile[];
  functions: FunctionFile[];
  /** sha256 over the function layer's paths and contents, in order, hex. */
  functionsHash: string;
}

/** What a database has installed, as read by {@linkcode readInstalled}. */
export interface Installed {
  /** The release recorded in `omni_kube.release`; null when none is. */
  release: string | null;
  /** Applied schema files and their checksums. */
  schema: Map<string, string>;
  functionsHash: string | null;
  /** The file names recorded by release 0.1.0's migrator, when its table is there. */
  legacyFiles: string[] | null;
  /** Whether the queue table exists and is unlogged, as 0.1.0 left it. */
  legacyQueueUnlogged: boolean;
  /** Whether schema omni_kube has tables that no migrator recorded. */
  unrecordedTables: boolean;
  /** The server's `server_version_num`, e.g. 140013. */
  serverVersion: number;
}

/** What {@linkcode migrate} has to do, decided by {@linkcode planMigration}. */
export interface MigrationPlan {
  /** The release installed now; null for an empty database. */
  from: string | null;
  /** Take a 0.1.0 install over as having the baseline. */
  adoptLegacy: boolean;
  /** Schema files to apply, in order. */
  schema: SchemaFile[];
  /** Whether the function layer must be re-created. */
  functions: boolean;
}

/** What {@linkcode migrate} did. */
export interface MigrationReport {
  from: string | null;
  to: string;
  /** Whether a 0.1.0 install was taken over. */
  adopted: boolean;
  /** Schema files applied now, each naming the variant this server got, if any. */
  applied: string[];
  /** Whether the function layer was re-created. */
  functionsReplaced: boolean;
}

/** The database cannot be served or upgraded by this release; the message says why and what to do. */
export class IncompatibleDatabase extends Error {
  override name = "IncompatibleDatabase";
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The paths the function layer's manifest lists, in order. */
export function parseManifest(text: string): string[] {
  return text.split("\n").map((line) => line.replace(/#.*/, "").trim()).filter((line) => line);
}

async function schemaFileNames(dir: URL): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && SCHEMA_FILE.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/** The variants under `sql/schema/pgNN/`, by file name, newest `maxMajor` first. */
async function bundledVariants(): Promise<Map<string, SchemaVariant[]>> {
  const variants = new Map<string, SchemaVariant[]>();
  for await (const entry of Deno.readDir(new URL("schema/", SQL_DIR))) {
    const match = VARIANT_DIR.exec(entry.name);
    if (!entry.isDirectory || !match) continue;
    const dir = new URL(`schema/${entry.name}/`, SQL_DIR);
    for (const name of await schemaFileNames(dir)) {
      const sql = await Deno.readTextFile(new URL(name, dir));
      const list = variants.get(name) ?? [];
      list.push({ maxMajor: Number(match[1]), sql, checksum: sha256Hex(sql) });
      variants.set(name, list.sort((a, b) => b.maxMajor - a.maxMajor));
    }
  }
  return variants;
}

/** The shim shipped with this code. */
export async function bundledShim(): Promise<Shim> {
  const names = await schemaFileNames(new URL("schema/", SQL_DIR));
  const variants = await bundledVariants();
  const orphans = [...variants.keys()].filter((name) => !names.includes(name));
  if (orphans.length > 0) {
    throw new Error(
      `sql/schema has variants of files it does not have (${orphans.join(", ")}): a variant ` +
        "takes the name of the schema file it stands in for",
    );
  }
  const schema = await Promise.all(names.map(async (name) => {
    const sql = await Deno.readTextFile(new URL(`schema/${name}`, SQL_DIR));
    const file: SchemaFile = { name, sql, checksum: sha256Hex(sql) };
    if (variants.has(name)) file.variants = variants.get(name);
    return file;
  }));
  const manifest = parseManifest(
    await Deno.readTextFile(new URL("functions/manifest.txt", SQL_DIR)),
  );
  const functions = await Promise.all(manifest.map(async (path) => ({
    path,
    sql: await Deno.readTextFile(new URL(`functions/${path}`, SQL_DIR)),
  })));
  const functionsHash = sha256Hex(
    functions.map((f) => `${f.path}\0${f.sql}\0`).join(""),
  );
  return { release: RELEASE, schema, functions, functionsHash };
}

/** Reads what `sql`'s database has installed. */
export async function readInstalled(sql: Sql): Promise<Installed> {
  const [tables] = await sql`
    select to_regclass('omni_kube.release') is not null as release,
           to_regclass('omni_kube.schema_migrations') is not null as schema_migrations,
           to_regclass('omni_kube.migrations') is not null as legacy,
           coalesce((select relpersistence = 'u' from pg_catalog.pg_class
                      where oid = to_regclass('omni_kube.request')), false) as queue_unlogged,
           exists (select from pg_catalog.pg_tables where schemaname = 'omni_kube') as any_table,
           pg_catalog.current_setting('server_version_num')::int as server_version`;
  const installed: Installed = {
    release: null,
    schema: new Map(),
    functionsHash: null,
    legacyFiles: null,
    legacyQueueUnlogged: tables.queue_unlogged,
    unrecordedTables: false,
    serverVersion: tables.server_version,
  };
  if (tables.release) {
    const [row] = await sql`select version, functions_hash from omni_kube.release`;
    installed.release = row?.version ?? null;
    installed.functionsHash = row?.functions_hash ?? null;
  }
  if (tables.schema_migrations) {
    for (const row of await sql`select name, checksum from omni_kube.schema_migrations`) {
      installed.schema.set(row.name, row.checksum);
    }
  }
  if (tables.legacy) {
    installed.legacyFiles = (await sql`select name from omni_kube.migrations order by name`)
      .map((row) => row.name);
  }
  installed.unrecordedTables = tables.any_table && !tables.release && !tables.schema_migrations &&
    !tables.legacy;
  return installed;
}

/** A `server_version_num` as the version people say, e.g. 140013 as "14.13", 90624 as "9.6.24". */
export function serverVersionName(versionNum: number): string {
  const major = Math.floor(versionNum / 10000);
  return major >= 10
    ? `${major}.${versionNum % 10000}`
    : `${major}.${Math.floor(versionNum / 100) % 100}.${versionNum % 100}`;
}

/**
 * The schema files to apply on a server of `serverVersion` (`server_version_num`): each file, or
 * its variant with the smallest `maxMajor` that is still at least the server's major.
 */
export function schemaForServer(shim: Shim, serverVersion: number): SchemaFile[] {
  const major = Math.floor(serverVersion / 10000);
  return shim.schema.map((file) => {
    const fits = (file.variants ?? []).filter((v) => major <= v.maxMajor);
    const chosen = fits.at(-1);
    if (!chosen) return file;
    return {
      name: file.name,
      sql: chosen.sql,
      checksum: chosen.checksum,
      variant: `pg${chosen.maxMajor}`,
    };
  });
}

/**
 * Why this shim cannot serve or upgrade the installed database, or null when it can. Never
 * touches the database: the rules are here, testable on their own.
 */
export function incompatibility(installed: Installed, shim: Shim): string | null {
  if (installed.serverVersion < MIN_SERVER_VERSION) {
    return `this server runs PostgreSQL ${serverVersionName(installed.serverVersion)}; omni_kube ` +
      `${shim.release} needs PostgreSQL ${MIN_SERVER_VERSION / 10000} or newer. Upgrade the ` +
      "server, or use a database on a newer one.";
  }
  if (installed.legacyFiles && installed.release === null) {
    const recorded = new Set(installed.legacyFiles);
    const missing = LEGACY_FILES.filter((name) => !recorded.has(name));
    if (missing.length > 0 || !installed.legacyQueueUnlogged) {
      return `this database's shim was installed by a build older than release ${LEGACY_RELEASE} ` +
        `(${LEGACY_FILES.length - missing.length} of its ${LEGACY_FILES.length} schema files are ` +
        `recorded) and cannot be upgraded in place. Install into a new database, or drop schema ` +
        `omni_kube (with the views and tables that depend on it) and start again.`;
    }
  }
  if (installed.unrecordedTables) {
    return "schema omni_kube holds tables that no omni_kube migrator recorded: it was not " +
      "installed by this tool. Use another database, or rename that schema.";
  }
  if (installed.release !== null && compareReleases(installed.release, shim.release) > 0) {
    return `this database was upgraded by omni_kube ${installed.release}, which is newer than ` +
      `this worker's release ${shim.release}. Run a worker of release ${installed.release} or ` +
      `newer; a release never downgrades a database.`;
  }
  // A file's variants count as the file: a server upgraded in place keeps what it was given.
  const known = new Map(
    shim.schema.map((file) => [
      file.name,
      new Set([file.checksum, ...(file.variants ?? []).map((v) => v.checksum)]),
    ]),
  );
  const unknown = [...installed.schema.keys()].filter((name) => !known.has(name)).sort();
  if (unknown.length > 0) {
    return `this database has schema files that release ${shim.release} does not know ` +
      `(${unknown.join(", ")}), applied by release ${installed.release ?? "unknown"}: run a ` +
      `worker of that release or newer.`;
  }
  const changed = [...installed.schema].filter(([name, checksum]) =>
    !known.get(name)!.has(checksum)
  )
    .map(([name]) => name).sort();
  if (changed.length > 0) {
    return `schema file${changed.length > 1 ? "s" : ""} ${changed.join(", ")} of this release ` +
      `differ${changed.length > 1 ? "" : "s"} from what was applied to this database. Released ` +
      `schema files are never edited: restore the released file and put the change in a new one.`;
  }
  return null;
}

/** What has to be done to bring `installed` to `shim`; throws when it cannot be done. */
export function planMigration(installed: Installed, shim: Shim): MigrationPlan {
  const problem = incompatibility(installed, shim);
  if (problem) throw new IncompatibleDatabase(problem);
  const adoptLegacy = installed.legacyFiles !== null && installed.release === null;
  const applied = new Set(installed.schema.keys());
  if (adoptLegacy) applied.add(BASELINE);
  return {
    from: adoptLegacy ? LEGACY_RELEASE : installed.release,
    adoptLegacy,
    schema: schemaForServer(shim, installed.serverVersion).filter((file) =>
      !applied.has(file.name)
    ),
    functions: adoptLegacy || installed.release !== shim.release ||
      installed.functionsHash !== shim.functionsHash,
  };
}

/** Names of what is not applied yet: schema files, and `functions` when that layer is stale. */
export function pendingNames(plan: MigrationPlan): string[] {
  return [...plan.schema.map((file) => file.name), ...(plan.functions ? ["functions"] : [])];
}

/** Creates the migrator's own tables, which every release reads the same way. */
const BOOKKEEPING = `
  create schema if not exists omni_kube;
  create table if not exists omni_kube.schema_migrations (
    name text primary key,
    checksum text not null,
    release text not null,
    applied_at timestamptz not null default now()
  );
  create table if not exists omni_kube.release (
    singleton boolean primary key default true check (singleton),
    version text not null,
    functions_hash text not null,
    installed_at timestamptz not null default now(),
    upgraded_at timestamptz not null default now()
  );
  revoke all on omni_kube.schema_migrations, omni_kube.release from public;`;

/**
 * Runs `step` in a transaction that holds the migration lock, with the plan read inside it (so
 * that a migrator that waited for the lock sees what the one before it did).
 */
async function locked<T>(
  sql: Sql,
  shim: Shim,
  step: (tx: Sql, plan: MigrationPlan) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select pg_catalog.pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    // Objects are created and bound with nothing on the search path but the catalog.
    await tx`set local search_path = pg_catalog, pg_temp`;
    // sql.begin's callback gets a TransactionSql; its queries are those of Sql.
    return await step(
      tx as unknown as Sql,
      planMigration(await readInstalled(tx as unknown as Sql), shim),
    );
  }) as T;
}

/** Applies what is pending; refuses an incompatible database. */
export async function migrate(sql: Sql, shim?: Shim): Promise<MigrationReport> {
  shim ??= await bundledShim();
  const { from, adopted } = await locked(sql, shim, async (tx, plan) => {
    await tx.unsafe(BOOKKEEPING);
    if (plan.adoptLegacy) {
      await tx`
        insert into omni_kube.schema_migrations (name, checksum, release)
        values (${BASELINE}, ${shim.schema.find((f) => f.name === BASELINE)!.checksum},
                ${LEGACY_RELEASE})`;
      await tx`
        insert into omni_kube.release (version, functions_hash)
        values (${LEGACY_RELEASE}, 'unrecorded')`;
      await tx`drop table omni_kube.migrations`;
    }
    return { from: plan.from, adopted: plan.adoptLegacy };
  });
  const applied: string[] = [];
  for (;;) {
    const file = await locked(sql, shim, async (tx, plan) => {
      const next = plan.schema[0];
      if (!next) return undefined;
      try {
        await tx.unsafe(next.sql);
      } catch (error) {
        throw new Error(`schema file ${next.name} failed: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      await tx`
        insert into omni_kube.schema_migrations (name, checksum, release)
        values (${next.name}, ${next.checksum}, ${shim.release})`;
      // "0001_baseline.sql (pg14 variant)": the install log says which text this server got.
      return next.variant ? `${next.name} (${next.variant} variant)` : next.name;
    });
    if (!file) break;
    applied.push(file);
  }
  const functionsReplaced = await locked(sql, shim, async (tx, plan) => {
    if (!plan.functions) return false;
    for (const file of shim.functions) {
      try {
        await tx.unsafe(file.sql);
      } catch (error) {
        throw new Error(`function layer file ${file.path} failed: ${errorMessage(error)}`, {
          cause: error,
        });
      }
    }
    await tx`
      insert into omni_kube.release (version, functions_hash)
      values (${shim.release}, ${shim.functionsHash})
      on conflict (singleton) do update
        set version = excluded.version, functions_hash = excluded.functions_hash,
            upgraded_at = now()`;
    return true;
  });
  return { from, to: shim.release, adopted, applied, functionsReplaced };
}

/** What `migrate` would do now, without doing it; throws for an incompatible database. */
export async function pendingMigrations(sql: Sql, shim?: Shim): Promise<string[]> {
  shim ??= await bundledShim();
  return pendingNames(planMigration(await readInstalled(sql), shim));
}

/** One line saying what {@linkcode migrate} did. */
export function describeMigration(report: MigrationReport): string {
  const schema = report.applied.length ? `schema ${report.applied.join(", ")}` : "no schema change";
  const functions = report.functionsReplaced ? "functions re-created" : "functions unchanged";
  if (report.from === null) return `installed omni_kube ${report.to} (${schema}; ${functions})`;
  if (report.from === report.to) {
    return report.applied.length || report.functionsReplaced
      ? `updated omni_kube ${report.to} in place (${schema}; ${functions})`
      : `omni_kube ${report.to} is installed and up to date`;
  }
  return `upgraded omni_kube ${report.from} to ${report.to} (${schema}; ${functions})`;
}
