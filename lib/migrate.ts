/**
 * Applies the SQL shim: the files in `sql/`, in name order, each once, each in its own transaction,
 * recorded in `omni_kube.migrations`. Concurrent workers serialise on an advisory lock.
 *
 * @module
 */
import { errorMessage } from "./observe.ts";
import type { Sql } from "./db.ts";

const SQL_DIR = new URL("../sql/", import.meta.url);
/** Arbitrary, fixed: serialises migrations across workers. */
const MIGRATION_LOCK = 7_301_975_422;

/** One migration file. */
export interface Migration {
  name: string;
  sql: string;
}

/** The migrations shipped with this version, in order. */
export async function bundledMigrations(): Promise<Migration[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(SQL_DIR)) {
    if (entry.isFile && /^\d{4}_.+\.sql$/.test(entry.name)) names.push(entry.name);
  }
  names.sort();
  return await Promise.all(
    names.map(async (name) => ({ name, sql: await Deno.readTextFile(new URL(name, SQL_DIR)) })),
  );
}

/** Applies pending migrations; returns the names applied now. */
export async function migrate(sql: Sql, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? await bundledMigrations();
  return await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx.unsafe(`
      create schema if not exists omni_kube;
      create table if not exists omni_kube.migrations (
        name text primary key,
        applied_at timestamptz not null default now()
      )`);
    const done = new Set((await tx`select name from omni_kube.migrations`).map((r) => r.name));
    const applied: string[] = [];
    for (const migration of all) {
      if (done.has(migration.name)) continue;
      try {
        await tx.unsafe(migration.sql);
      } catch (error) {
        const message = errorMessage(error);
        throw new Error(`migration ${migration.name} failed: ${message}`, { cause: error });
      }
      await tx`insert into omni_kube.migrations (name) values (${migration.name})`;
      applied.push(migration.name);
    }
    return applied;
  });
}

/** Names of the bundled migrations not yet applied to the database. */
export async function pendingMigrations(sql: Sql): Promise<string[]> {
  const all = await bundledMigrations();
  const [{ exists }] = await sql`select to_regclass('omni_kube.migrations') is not null as exists`;
  if (!exists) return all.map((m) => m.name);
  const done = new Set((await sql`select name from omni_kube.migrations`).map((r) => r.name));
  return all.filter((m) => !done.has(m.name)).map((m) => m.name);
}
