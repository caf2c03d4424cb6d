/**
 * The queue's SQL, and nothing else: claim, complete, heartbeat, per-request locks, purge.
 * Knows nothing about HTTP.
 *
 * Callers wait for a request by blocking on its advisory lock (`omni_kube._lock_key()`); the
 * worker holds the locks of requests it will run, including ids not yet issued (a window ahead of
 * the id sequence), and releases each one after the request's result is committed.
 *
 * @module
 */
import type { Sql } from "./db.ts";
import type { PendingQuery, Row } from "postgres";
import type { HttpMethod, PatchType } from "./kube/client.ts";

/** Channel on which new requests are announced. */
export const REQUEST_CHANNEL = "omni_kube_request";
/** Channel on which callers announce requests they gave up on (comma-separated ids). */
export const CANCEL_CHANNEL = "omni_kube_cancel";
/** Kinds of request; each has its own concurrency limit in the worker. */
export const REQUEST_KINDS = ["api", "watch"] as const;
/** One of {@linkcode REQUEST_KINDS}. */
export type RequestKind = typeof REQUEST_KINDS[number];

/** Channel on which finished request ids are announced (comma-separated, or "*"). */
export const DONE_CHANNEL = "omni_kube_done";

/** A piece of a statement, put into another with `${...}`. */
type Fragment = PendingQuery<Row[]>;

/** Bodies of this many characters and more are written with a statement of their own. */
const LARGE = 64 * 1024;

/** A claimed request, with its credentials (deleted from the database by the claim). */
export interface ClaimedRequest {
  id: number;
  kind: RequestKind;
  method: HttpMethod;
  path: string;
  /** JSON text, or null. */
  body: string | null;
  stream: boolean;
  patchType: PatchType | null;
  server: string | null;
  timeoutMs: number;
  useWorkerDefault: boolean;
  cacert: string | null;
  clientCertificate: string | null;
  clientPrivateKey: string | null;
  token: string | null;
  /** Whether the claim took this request's lock (false: it was already held, e.g. by the window). */
  locked: boolean;
}

/** What became of a request. `body` is the raw response text, never parsed here. */
export type RequestResult =
  | { id: number; outcome: "response"; status: number; body: string | null; isJson: boolean }
  | { id: number; outcome: "failed"; error: string };

/** The queue operations of one worker, on one dedicated session (which also holds its locks). */
export class Queue {
  constructor(readonly session: Sql, readonly workerId: string) {}

  /**
   * Records this worker and takes its worker lock, which callers look for in pg_locks to know it
   * is alive. Safe to repeat on a new session after the old one was lost.
   */
  async register(host: string, pid: number): Promise<void> {
    await this.session`
      select pg_advisory_lock(omni_kube._worker_lock_class(), omni_kube._worker_lock_key(${this.workerId})),
             pg_advisory_lock_shared(omni_kube._worker_lock_class(), 0)`;
    await this.session`
      insert into omni_kube.workers (id, host, pid, lock_backend_pid)
      values (${this.workerId}, ${host}, ${pid}, pg_backend_pid())
      on conflict (id) do update
        set lock_backend_pid = excluded.lock_backend_pid, last_seen = now()`;
  }

  /** Publishes the pod's service-account token and CA for `omni_kube.pod_credentials()`. */
  async publishPodCredentials(token: string, cacert: string | undefined): Promise<void> {
    await this.session`
      insert into omni_kube.worker_pod_credentials (worker_id, token, cacert)
      values (${this.workerId}, ${token}, ${cacert ?? null})
      on conflict (worker_id) do update
        set token = excluded.token, cacert = excluded.cacert, read_at = now()`;
  }

  async heartbeat(): Promise<void> {
    await this.session`
      update omni_kube.workers set last_seen = now(), lock_backend_pid = pg_backend_pid()
       where id = ${this.workerId}`;
  }

  async unregister(): Promise<void> {
    await this.session`delete from omni_kube.workers where id = ${this.workerId}`;
  }

  /** The id the next request will get. */
  async nextRequestId(): Promise<number> {
    const [row] = await this.session`
      select case when is_called then last_value + 1 else last_value end as next
        from omni_kube.request_id_seq`;
    return Number(row.next);
  }

  /** Takes the locks of `ids` that nobody holds; returns the ids locked. */
  async tryLock(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.session`
      select id from unnest(${ids}::bigint[]) id
       where pg_try_advisory_lock(omni_kube._lock_class(), omni_kube._lock_key(id))`;
    return rows.map((r) => Number(r.id));
  }

  /** Releases one hold of each lock in `ids`. */
  async unlock(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.session`
      select pg_advisory_unlock(omni_kube._lock_class(), omni_kube._lock_key(id))
        from unnest(${ids}::bigint[]) id`;
  }

  /**
   * Claims up to `limits[kind]` queued requests of each kind (oldest first, skipping rows other
   * workers are claiming), marks them running, deletes their credentials and takes their locks,
   * in one statement. The result is ordered by id.
   */
  async claim(limits: Record<RequestKind, number>): Promise<ClaimedRequest[]> {
    const rows = await this.session`
      with api as (
        select id from omni_kube.request where state = 'queued' and kind = 'api'
         order by id limit ${limits.api} for update skip locked
      ), watch as (
        select id from omni_kube.request where state = 'queued' and kind = 'watch'
         order by id limit ${limits.watch} for update skip locked
      ), claimed as (
        update omni_kube.request r
           set state = 'running', worker_id = ${this.workerId}, claimed_at = clock_timestamp()
         where r.id in (select id from api union all select id from watch)
        returning r.id, r.kind, r.method, r.path, r.body, r.stream, r.patch_type, r.server,
                  r.timeout_ms
      ), credentials as (
        delete from omni_kube.request_credentials c using claimed
         where c.request_id = claimed.id
        returning c.*
      )
      select claimed.id, claimed.kind, claimed.method::text as method, claimed.path,
             claimed.body::text as body, claimed.stream, claimed.patch_type, claimed.server, claimed.timeout_ms,
             coalesce(c.use_worker_default, false) as use_worker_default, c.cacert,
             c.client_certificate, c.client_private_key, c.token,
             pg_try_advisory_lock(omni_kube._lock_class(), omni_kube._lock_key(claimed.id)) as locked
        from claimed left join credentials c on c.request_id = claimed.id
       order by claimed.id`;
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
      method: r.method,
      path: r.path,
      body: r.body,
      stream: r.stream,
      patchType: r.patch_type,
      server: r.server,
      timeoutMs: r.timeout_ms,
      useWorkerDefault: r.use_worker_default,
      cacert: r.cacert,
      clientCertificate: r.client_certificate,
      clientPrivateKey: r.client_private_key,
      token: r.token,
      locked: r.locked,
    }));
  }

  /**
   * Writes results: small ones in one statement, each large one in a statement of its own.
   * Requests a caller abandoned meanwhile stay as they are.
   *
   * A body said to be JSON is cast straight to jsonb, which fails the whole statement if one is
   * not JSON after all (or not storable as jsonb). `tolerant` stores such a body as a JSON string
   * instead, at the price of a subtransaction per row: for writing results one by one after a
   * batch failed.
   */
  async complete(results: RequestResult[], { tolerant = false } = {}): Promise<void> {
    const large = (r: RequestResult) => r.outcome === "response" && (r.body?.length ?? 0) >= LARGE;
    // Sent back to back on the session: postgres.js pipelines them.
    await Promise.all([
      this.#completeBatch(results.filter((r) => !large(r)), tolerant),
      ...results.filter(large).map((r) => this.#completeOne(r, tolerant)),
    ]);
  }

  /**
   * The statement that writes the results in `rows`, a relation `x(id, status, body, is_json,
   * error)`, then runs `announce`, a select over the ids `written`.
   */
  #write(rows: Fragment, tolerant: boolean, announce: Fragment): Fragment {
    const response = tolerant
      ? this.session`omni_kube._response_jsonb(x.body, x.is_json)`
      : this.session`case when x.body is null or x.body = '' then null
                          when x.is_json then x.body::jsonb else to_jsonb(x.body) end`;
    return this.session`
      with written as (
        update omni_kube.request r
           set state = case when x.error is null then 'done' else 'failed' end::omni_kube.request_state,
               status = x.status,
               response = ${response},
               error = x.error,
               finished_at = clock_timestamp()
          from ${rows}
         where r.id = x.id and r.state = 'running' and r.worker_id = ${this.workerId}
        returning r.id
      )
      ${announce}`;
  }

  async #completeBatch(results: RequestResult[], tolerant: boolean): Promise<void> {
    if (results.length === 0) return;
    const ids = results.map((r) => r.id);
    const statuses = results.map((r) => r.outcome === "response" ? r.status : null);
    const bodies = results.map((r) => r.outcome === "response" ? r.body : null);
    // postgres.js sends a boolean[] parameter as a scalar: pass text and cast.
    const isJson = results.map((r) => r.outcome === "response" && r.isJson ? "t" : "f");
    const errors = results.map((r) => r.outcome === "failed" ? r.error : null);
    // Other workers may hold these requests' locks (their windows): tell them to let go.
    // A NOTIFY payload must stay under 8000 bytes, so a large batch says "*" (sweep) instead.
    await this.#write(
      this.session`unnest(${ids}::bigint[], ${statuses}::int2[], ${bodies}::text[],
                          ${isJson}::text[]::bool[], ${errors}::text[]) as x(id, status, body, is_json, error)`,
      tolerant,
      this.session`select pg_notify(${DONE_CHANNEL},
                                    case when count(*) <= 400 then string_agg(id::text, ',') else '*' end)
                     from written having count(*) > 0`,
    );
  }

  /**
   * One result with scalar parameters. (An array parameter is escaped element by element into a
   * new string: for a body of megabytes, the worker's memory would peak at many times its size.)
   */
  async #completeOne(result: RequestResult, tolerant: boolean): Promise<void> {
    const response = result.outcome === "response" ? result : undefined;
    await this.#write(
      this.session`(values (${result.id}::bigint, ${response?.status ?? null}::int2,
                            ${response?.body ?? null}::text, ${response?.isJson ?? false}::bool,
                            ${result.outcome === "failed" ? result.error : null}::text))
                     as x(id, status, body, is_json, error)`,
      tolerant,
      this.session`select pg_notify(${DONE_CHANNEL}, id::text) from written`,
    );
  }

  /** Of `ids`, those issued but not waiting to run: finished, abandoned, purged or never used. */
  async settled(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.session`
      select k.id from unnest(${ids}::bigint[]) as k(id)
       where k.id <= (select last_value from omni_kube.request_id_seq)
         and not exists (select from omni_kube.request r
                          where r.id = k.id and r.state in ('queued', 'running'))`;
    return rows.map((r) => Number(r.id));
  }

  /**
   * Of the running `ids`, those nobody waits for any more: abandoned by their caller, or whose
   * caller's backend has moved on from the statement that made them (cancelled, disconnected).
   */
  async orphaned(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.session`
      select r.id from omni_kube.request r
       where r.id = any(${ids}::bigint[])
         and (r.state <> 'running'
              or not exists (select from pg_stat_activity a
                              where a.pid = r.backend_pid and a.state = 'active'
                                -- a little slack: the two clocks are read at different moments
                                and a.query_start <= r.statement_started + interval '1 ms'))`;
    return rows.map((r) => Number(r.id));
  }

  /**
   * Deletes requests finished longer ago than `retentionSeconds`, and workers silent for an hour;
   * fails requests whose worker died.
   */
  async purge(retentionSeconds: number): Promise<number> {
    // Requests left running by a worker that died while nobody waited for them would stay forever.
    await this.session`
      update omni_kube.request
         set state = 'failed', finished_at = clock_timestamp(),
             error = 'the worker running this request stopped before it finished; it was not retried'
       where state = 'running' and worker_id <> ${this.workerId}
         and not omni_kube._worker_alive(worker_id)
         -- not one that is only reconnecting: its heartbeat would be recent
         and not exists (select from omni_kube.workers w
                          where w.id = worker_id and w.last_seen > now() - interval '30 seconds')`;
    const rows = await this.session`
      with purged as (
        delete from omni_kube.request
         where finished_at < now() - make_interval(secs => ${retentionSeconds})
        returning 1
      ), gone as (
        delete from omni_kube.workers w where w.id <> ${this.workerId}
           and w.last_seen < now() - interval '1 hour'
      )
      select count(*)::int as n from purged`;
    return rows[0].n;
  }
}

/** Requests in the queue table by state. */
export async function queueDepth(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql`
    select state::text as state, count(*)::int as count from omni_kube.request group by state`;
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
