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
import type { Writable } from "node:stream";
import { once } from "node:events";
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

/**
 * What became of a request. `body` is the raw response text, never parsed here. A `stored`
 * response is in the request row already (see {@linkcode ResponsePieces}).
 */
export type RequestResult =
  | { id: number; outcome: "response"; status: number; body: string | null; isJson: boolean }
  | { id: number; outcome: "stored"; status: number }
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
   * stored, error)`, then runs `announce`, a select over the ids `written`.
   */
  #write(rows: Fragment, tolerant: boolean, announce: Fragment): Fragment {
    const response = tolerant
      ? this.session`case when x.stored then r.response
                          else omni_kube._response_jsonb(x.body, x.is_json) end`
      : this.session`case when x.stored then r.response
                          when x.body is null or x.body = '' then null
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
    const statuses = results.map((r) => r.outcome === "failed" ? null : r.status);
    const bodies = results.map((r) => r.outcome === "response" ? r.body : null);
    // postgres.js sends a boolean[] parameter as a scalar: pass text and cast.
    const isJson = results.map((r) => r.outcome === "response" && r.isJson ? "t" : "f");
    const stored = results.map((r) => r.outcome === "stored" ? "t" : "f");
    const errors = results.map((r) => r.outcome === "failed" ? r.error : null);
    // Other workers may hold these requests' locks (their windows): tell them to let go.
    // A NOTIFY payload must stay under 8000 bytes, so a large batch says "*" (sweep) instead.
    await this.#write(
      this.session`unnest(${ids}::bigint[], ${statuses}::int2[], ${bodies}::text[],
                          ${isJson}::text[]::bool[], ${stored}::text[]::bool[], ${errors}::text[])
                     as x(id, status, body, is_json, stored, error)`,
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
                            false, ${result.outcome === "failed" ? result.error : null}::text))
                     as x(id, status, body, is_json, stored, error)`,
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
   * Deletes requests finished longer ago than `retentionSeconds`, workers silent for an hour and
   * response pieces nobody will assemble; fails requests whose worker died.
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
      ), stray_pieces as (
        -- pieces nobody will assemble: their worker stopped, or their caller gave up
        delete from omni_kube.response_piece p
         where not exists (select from omni_kube.request r
                            where r.id = p.request_id and r.state = 'running')
      )
      select count(*)::int as n from purged`;
    return rows[0].n;
  }
}

/**
 * Large response bodies, copied into PostgreSQL as they arrive and then assembled into their
 * request's row, so that the worker never holds one whole. Each piece is a chunk of the body as
 * it came off the network, in COPY's binary format: no decoding, no escaping, no parameter
 * strings. The queue session stays free meanwhile.
 *
 * Each COPY runs on a session of its own, taken from a few kept for it: postgres.js would
 * pipeline another statement onto a connection whose COPY has not begun yet, which the server
 * refuses by closing the connection. (Not `sql.reserve()`: see the queue session in worker.ts.)
 */
export class ResponsePieces {
  readonly #idle: Sql[] = [];
  readonly #all: Sql[] = [];
  readonly #waiting: ((session: Sql) => void)[] = [];

  /**
   * `sql` runs the other statements; `openCopySession` opens a one-connection client for COPY,
   * of which at most `maxCopies` are kept (more bodies wait for one to be free).
   */
  constructor(
    readonly sql: Sql,
    readonly workerId: string,
    readonly openCopySession: () => Sql,
    readonly maxCopies: number,
  ) {}

  /**
   * A sink for the body of request `id`: every chunk written becomes a piece; closing commits
   * them, aborting discards them. `signal` bounds the wait for the commit (postgres.js never
   * reports a connection lost after the end of a COPY was sent).
   */
  async sink(id: number, signal: AbortSignal): Promise<WritableStream<Uint8Array>> {
    const session = await this.#acquire();
    let copy: Writable;
    try {
      copy = await session`
        copy omni_kube.response_piece (request_id, seq, piece) from stdin (format binary)`
        .writable();
    } catch (error) {
      this.#release(session);
      throw error;
    }
    // Node stream back-pressure: wait only when postgres.js has more than its buffer's worth.
    let failure: Error | undefined;
    copy.on("error", (error) => failure ??= error);
    const send = async (bytes: Uint8Array) => {
      if (failure) throw failure;
      if (!copy.write(bytes)) await once(copy, "drain");
    };
    let seq = 0;
    return new WritableStream<Uint8Array>({
      start: () => send(COPY_BINARY_HEADER),
      write: async (piece) => {
        await send(pieceHeader(id, seq++, piece.length));
        await send(piece);
      },
      close: async () => {
        try {
          await send(COPY_BINARY_TRAILER);
          signal.throwIfAborted();
          await new Promise<void>((resolve, reject) => {
            const abandon = () => reject(signal.reason);
            signal.addEventListener("abort", abandon, { once: true });
            copy.end((error?: Error | null) => {
              signal.removeEventListener("abort", abandon);
              if (error) reject(error);
              else resolve();
            });
          });
        } finally {
          this.#release(session);
        }
      },
      abort: (reason) => {
        // Sends CopyFail: the server discards every piece of this COPY.
        copy.destroy(reason instanceof Error ? reason : new Error(String(reason)));
        this.#release(session);
      },
    });
  }

  async #acquire(): Promise<Sql> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#all.length < this.maxCopies) {
      const session = this.openCopySession();
      this.#all.push(session);
      return session;
    }
    return await new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(session: Sql): void {
    const next = this.#waiting.shift();
    if (next) next(session);
    else this.#idle.push(session);
  }

  /** Closes the COPY sessions. */
  async close(): Promise<void> {
    await Promise.all(this.#all.map((session) => session.end({ timeout: 2 })));
  }

  /**
   * Joins the pieces of request `id` into its response and deletes them. A body said to be JSON
   * that is not (or is not storable as jsonb) is stored as a JSON string, as `complete` does; a
   * body that is not UTF-8 fails with PostgreSQL's error, which names the byte.
   */
  async assemble(id: number, isJson: boolean): Promise<void> {
    await this.sql`
      with pieces as (
        delete from omni_kube.response_piece where request_id = ${id} returning seq, piece
      )
      update omni_kube.request r
         set response = omni_kube._response_jsonb(
               convert_from((select string_agg(piece, ''::bytea order by seq) from pieces), 'UTF8'),
               ${isJson})
       where r.id = ${id} and r.state = 'running' and r.worker_id = ${this.workerId}`;
  }

  /** Deletes the pieces of a body that will not be assembled. */
  async discard(id: number): Promise<void> {
    await this.sql`delete from omni_kube.response_piece where request_id = ${id}`;
  }
}

/** The start of a COPY in binary format: signature, flags, no header extension. */
const COPY_BINARY_HEADER = Uint8Array.of(
  ...new TextEncoder().encode("PGCOPY\n"),
  0xff,
  0x0d,
  0x0a,
  0x00,
  ...new Uint8Array(8),
);
/** The end of a COPY in binary format: a field count of -1. */
const COPY_BINARY_TRAILER = Uint8Array.of(0xff, 0xff);

/** A tuple of (request_id bigint, seq int, piece bytea) up to the piece's bytes. */
function pieceHeader(id: number, seq: number, length: number): Uint8Array {
  const header = new DataView(new ArrayBuffer(2 + 4 + 8 + 4 + 4 + 4));
  header.setInt16(0, 3);
  header.setInt32(2, 8);
  header.setBigInt64(6, BigInt(id));
  header.setInt32(14, 4);
  header.setInt32(18, seq);
  header.setInt32(22, length);
  return new Uint8Array(header.buffer);
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
