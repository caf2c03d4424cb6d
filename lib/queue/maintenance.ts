/**
 * The worker's upkeep statements: registration and heartbeat, pod credentials, which held locks
 * and running requests nobody needs any more, and the purge of what is finished.
 *
 * @module
 */
import type { Sql } from "../db.ts";

/** Why a request whose caller went away is cancelled. */
const CALLER_GONE = "the caller is gone";

/** A named cluster as a worker publishes it: never a credential. */
export interface PublishedCluster {
  name: string;
  /** False: the worker cannot use it (`last_error` says why) and claims none of its requests. */
  usable: boolean;
  server: string | null;
  /** Null when unusable. */
  auth: string | null;
  server_version: string | null;
  /** Null until probed. */
  reachable: boolean | null;
  last_error: string | null;
  /** Whether a probe found what this says. */
  checked: boolean;
}

/** The upkeep statements of one worker, on its queue session. */
export class MaintenanceStatements {
  /** `session` is the worker's queue session, which holds the worker lock `register` takes. */
  constructor(readonly session: Sql, readonly workerId: string) {}

  /**
   * Takes a worker lock on a key drawn at random (another, if someone holds that one) and records
   * this worker with it: callers find the worker alive while the lock is held. `explicitServers`
   * is its --explicit-servers, which `omni_kube._call` checks servers named in SQL against. Random, so that no
   * one can hold the key before the worker does. Safe to repeat on a new session after the old one
   * was lost.
   */
  async register(host: string, pid: number, explicitServers: string): Promise<void> {
    for (;;) {
      const key = crypto.getRandomValues(new Int32Array(1))[0];
      const [{ locked }] = await this.session`
        select pg_try_advisory_lock(omni_kube._worker_lock_class(), ${key}::int4) as locked`;
      if (!locked) continue;
      await this.session`
        insert into omni_kube.workers (id, host, pid, lock_backend_pid, lock_key, explicit_servers)
        values (${this.workerId}, ${host}, ${pid}, pg_backend_pid(), ${key}, ${explicitServers})
        on conflict (id) do update
          set lock_backend_pid = excluded.lock_backend_pid, lock_key = excluded.lock_key,
              explicit_servers = excluded.explicit_servers, last_seen = now()`;
      return;
    }
  }

  /**
   * Records the most requests one role may have queued, which `omni_kube._insert_requests`
   * enforces when requests are enqueued. One value for the database: the last worker to start
   * sets it.
   */
  async recordRoleQueueLimit(limit: number): Promise<void> {
    await this.session`
      insert into omni_kube.instance_settings (name, value) values ('role_queue_limit', ${limit})
      on conflict (name) do update set value = excluded.value`;
  }

  /**
   * Publishes the named clusters this worker serves, as `omni_kube.clusters` shows them, in place
   * of what it published before.
   */
  async publishClusters(clusters: PublishedCluster[]): Promise<void> {
    await this.session`
      with published as (
        select * from jsonb_to_recordset(${JSON.stringify(clusters)}::text::jsonb)
          as c(name text, usable boolean, server text, auth text, server_version text,
               reachable boolean, last_error text, checked boolean)
      ), gone as (
        delete from omni_kube.worker_cluster wc
         where wc.worker_id = ${this.workerId}
           and wc.name not in (select p.name from published p)
      )
      insert into omni_kube.worker_cluster (worker_id, name, usable, server, auth, server_version,
                                            reachable, last_error, checked_at)
      select ${this.workerId}, p.name, p.usable, p.server, p.auth, p.server_version, p.reachable,
             p.last_error, case when p.checked then now() end
        from published p
      on conflict (worker_id, name) do update
        set usable = excluded.usable, server = excluded.server, auth = excluded.auth,
            server_version = excluded.server_version, reachable = excluded.reachable,
            last_error = excluded.last_error, checked_at = excluded.checked_at`;
  }

  /** Publishes the pod's service-account token and CA for `omni_kube.pod_credentials()`. */
  async publishPodCredentials(token: string, cacert: string | undefined): Promise<void> {
    await this.session`
      insert into omni_kube.worker_pod_credentials (worker_id, token, cacert)
      values (${this.workerId}, ${token}, ${cacert ?? null})
      on conflict (worker_id) do update
        set token = excluded.token, cacert = excluded.cacert, read_at = now()`;
  }

  /** Marks the worker alive now, on the backend that holds its locks. */
  async heartbeat(): Promise<void> {
    await this.session`
      update omni_kube.workers set last_seen = now(), lock_backend_pid = pg_backend_pid()
       where id = ${this.workerId}`;
  }

  /** Removes the worker's row: it stopped. */
  async unregister(): Promise<void> {
    await this.session`delete from omni_kube.workers where id = ${this.workerId}`;
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
   * Of the running `ids`, those nobody waits for any more: cancelled by their caller, or whose
   * caller's backend has moved on from the statement that made them (cancelled, disconnected).
   * The latter are cancelled now (`omni_kube._cancel_requests`); all are returned, to be stopped.
   */
  async orphaned(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const [row] = await this.session`
      with orphans as (
        select r.id, r.state from omni_kube.request r
         where r.id = any(${ids}::bigint[])
           and (r.state <> 'running'
                or not exists (select from pg_stat_activity a
                                where a.pid = r.backend_pid and a.state = 'active'
                                  -- a little slack: the two clocks are read at different moments
                                  and a.query_start <= r.statement_started + interval '1 ms'))
      )
      select array(select id from orphans) as ids,
             omni_kube._cancel_requests(array(select id from orphans where state = 'running'),
                                        ${CALLER_GONE}) as cancelled`;
    return row.ids.map(Number);
  }

  /**
   * Cancels the requests of workers that died while nobody waited for them; deletes requests
   * finished longer ago than `retentionSeconds`, workers silent for an hour and response pieces
   * nobody will assemble (`omni_kube._purge_requests`). Returns the number of requests deleted.
   */
  async purge(retentionSeconds: number): Promise<number> {
    const [row] = await this.session`
      select omni_kube._purge_requests(${this.workerId}, ${retentionSeconds}) as purged`;
    return row.purged;
  }
}
