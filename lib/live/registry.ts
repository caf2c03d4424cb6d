/**
 * The registry of live tables, as one worker speaks to it: which tables it mirrors (taken when
 * nobody alive does, let go when it stops), and what it records of each between writes; and the
 * listing `deno task status` prints. Only SQL: the informers are in ../kube/informer.ts, the
 * writes in ./table_store.ts.
 *
 * @module
 */
import type { Sql } from "../db.ts";

/** A live table as its worker mirrors it. */
export interface LiveTableEntry {
  id: number;
  /** The collection watched, selectors included. */
  path: string;
  /** Where its rows are current to; null: never synced (or its version expired). */
  resourceVersion: string | null;
}

/** The channel on which live_table(), a drop and a stopping worker wake the workers. */
export const LIVE_CHANNEL = "omni_kube_live";

/** One worker's statements on the registry. */
export class LiveRegistry {
  constructor(readonly sql: Sql, readonly workerId: string) {}

  /**
   * Takes the live tables of `server` (the worker's own cluster) that no live worker mirrors,
   * and those that no worker has taken yet.
   */
  async claim(server: string): Promise<LiveTableEntry[]> {
    const rows = await this.sql`
      select id, path, resource_version
        from omni_kube._live_claim(${this.workerId}::uuid, ${server})`;
    return rows.map(entry);
  }

  /** The live tables this worker mirrors. */
  async held(): Promise<LiveTableEntry[]> {
    const rows = await this.sql`
      select id, path, resource_version from omni_kube.live_registry
       where worker_id = ${this.workerId}::uuid`;
    return rows.map(entry);
  }

  /** Lets go of every table (the worker stops): another worker takes them at once. */
  async release(): Promise<void> {
    await this.sql`select omni_kube._live_release(${this.workerId}::uuid)`;
  }

  /** A list begins; false: the table is no longer this worker's. */
  async syncing(id: number): Promise<boolean> {
    const [row] = await this.sql`
      select omni_kube._live_syncing(${id}, ${this.workerId}::uuid) as ok`;
    return row?.ok === true;
  }

  /** A bookmark moved the table to `resourceVersion`; false: no longer this worker's. */
  async bookmark(id: number, resourceVersion: string): Promise<boolean> {
    const [row] = await this.sql`
      select omni_kube._live_bookmark(${id}, ${this.workerId}::uuid, ${resourceVersion}) as ok`;
    return row?.ok === true;
  }

  /** A watch is under way again after failures; false: no longer this worker's. */
  async resumed(id: number): Promise<boolean> {
    const [row] = await this.sql`
      select omni_kube._live_resumed(${id}, ${this.workerId}::uuid) as ok`;
    return row?.ok === true;
  }

  /** An attempt failed; `expired`: its version is gone and the next lists again. */
  async failed(id: number, error: string, expired: boolean): Promise<boolean> {
    const [row] = await this.sql`
      select omni_kube._live_failed(${id}, ${this.workerId}::uuid, ${error}, ${expired}) as ok`;
    return row?.ok === true;
  }
}

function entry(row: Record<string, unknown>): LiveTableEntry {
  return {
    id: Number(row.id),
    path: String(row.path),
    resourceVersion: (row.resource_version as string | null) ?? null,
  };
}

/** A live table as `deno task status` shows it (`omni_kube.live_tables`). */
export interface LiveTableRow {
  table: string;
  resource: string;
  state: string;
  objects: number;
  lastEventAt: Date | null;
  relists: number;
  lastError: string | null;
}

/** The live tables `sql`'s role may see, by schema and name. */
export async function liveTableList(sql: Sql): Promise<LiveTableRow[]> {
  const rows = await sql`
    select format('%I.%I', schema_name, table_name) as table,
           concat_ws('/', group_version, resource) as resource, state, objects, last_event_at,
           relists, last_error
      from omni_kube.live_tables order by schema_name, table_name`;
  return rows.map((r) => ({
    table: r.table,
    resource: r.resource,
    state: r.state,
    objects: Number(r.objects),
    lastEventAt: r.last_event_at,
    relists: r.relists,
    lastError: r.last_error,
  }));
}
