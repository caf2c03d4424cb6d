/**
 * Read-only queries over the queue for people: `deno task status` and the queue-depth metric.
 *
 * @module
 */
import type { Sql } from "../db.ts";

/** Requests in the queue table by state. */
export async function queueDepth(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql`
    select state::text as state, count(*)::int as count from omni_kube.request group by state`;
  return Object.fromEntries(rows.map((r) => [r.state, r.count]));
}

/** Async requests (`api_async()`) by state. */
export async function asyncDepth(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql`
    select state::text as state, count(*)::int as count from omni_kube.async_request
     group by state`;
  return Object.fromEntries(rows.map((r) => [r.state, r.count]));
}

/** A worker as `deno task status` shows it. */
export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  startedAt: Date;
  lastSeen: Date;
  alive: boolean;
}

/** Every registered worker, alive or not, newest first. */
export async function workerList(sql: Sql): Promise<WorkerRow[]> {
  const rows = await sql`
    select id, host, pid, started_at, last_seen, omni_kube._worker_alive(id) as alive
      from omni_kube.workers order by started_at desc`;
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    startedAt: r.started_at,
    lastSeen: r.last_seen,
    alive: r.alive,
  }));
}

/** A named cluster as `deno task status` shows it (`omni_kube.clusters`). */
export interface ClusterRow {
  name: string;
  server: string | null;
  auth: string | null;
  serverVersion: string | null;
  reachable: boolean | null;
  lastError: string | null;
  workers: number;
}

/** The named clusters the live workers serve or that have grants, by name. */
export async function clusterList(sql: Sql): Promise<ClusterRow[]> {
  const rows = await sql`
    select name, server, auth, server_version, reachable, last_error,
           cardinality(workers) as workers
      from omni_kube.clusters order by name`;
  return rows.map((r) => ({
    name: r.name,
    server: r.server,
    auth: r.auth,
    serverVersion: r.server_version,
    reachable: r.reachable,
    lastError: r.last_error,
    workers: r.workers,
  }));
}

/** A failed request as `deno task status` shows it. */
export interface FailureRow {
  id: number;
  state: string;
  method: string;
  path: string;
  status: number | null;
  error: string | null;
  finishedAt: Date | null;
}

/** The `limit` most recent requests that failed, were cancelled or answered 400 or more. */
export async function recentFailures(sql: Sql, limit: number): Promise<FailureRow[]> {
  const rows = await sql`
    select id, state::text as state, method::text as method, path, status, error, finished_at
      from omni_kube.request
     where state in ('failed', 'cancelled') or status >= 400
     order by id desc limit ${limit}`;
  return rows.map((r) => ({
    id: Number(r.id),
    state: r.state,
    method: r.method,
    path: r.path,
    status: r.status,
    error: r.error,
    finishedAt: r.finished_at,
  }));
}
