/**
 * The per-request advisory locks, and the id sequence they are taken ahead of.
 *
 * Callers wait for a request by blocking on its advisory lock (`omni_kube._lock_key()`, keyed by
 * the install's salt); the
 * worker holds the locks of requests it will run, including ids not yet issued (a window ahead of
 * the id sequence), and releases each one after the request's result is committed.
 *
 * Each statement reads the salt once, as a subquery: `omni_kube._lock_salt()` reads a table, so
 * PostgreSQL cannot inline it, and called per id it cost about as much as the lock itself.
 *
 * @module
 */
import type { Sql } from "../db.ts";

/** The lock statements of one worker, on its queue session (a lock belongs to the session). */
export class LockStatements {
  /** `session` is the worker's queue session. */
  constructor(readonly session: Sql) {}

  /** The id the next request will get. */
  async nextRequestId(): Promise<number> {
    const [row] = await this.session`
      select case when is_called then last_value + 1 else last_value end as next
        from omni_kube.request_id_seq`;
    return Number(row.next);
  }

  /**
   * Takes the locks of those of `ids` that the sequence has not issued yet and that nobody holds;
   * returns the ids locked. A lock held from before its request was made is one no claim can have
   * taken the request under: the worker holding it may start the request on its dispatch alone
   * (lib/worker/dispatch.ts).
   */
  async tryLock(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.session`
      select id from unnest(${ids}::bigint[]) id
       where case when id > (select case when is_called then last_value else last_value - 1 end
                               from omni_kube.request_id_seq)
                  then pg_try_advisory_lock(omni_kube._lock_class(),
                                            omni_kube._lock_key(id, (select omni_kube._lock_salt())))
                  else false end`;
    return rows.map((r) => Number(r.id));
  }

  /**
   * Takes the locks of those of `ids` that are still queued and that nobody holds; returns the ids
   * locked. (A request finished meanwhile keeps its lock free: taking it would start it again.)
   */
  async tryLockQueued(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.session`
      select r.id from omni_kube.request r
       where r.id = any(${ids}::bigint[])
         and case when r.state = 'queued'
                  then pg_try_advisory_lock(omni_kube._lock_class(),
                                            omni_kube._lock_key(r.id, (select omni_kube._lock_salt())))
                  else false end`;
    return rows.map((r) => Number(r.id));
  }

  /** Releases one hold of each lock in `ids`. */
  async unlock(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.session`
      select pg_advisory_unlock(omni_kube._lock_class(),
                                omni_kube._lock_key(id, (select omni_kube._lock_salt())))
        from unnest(${ids}::bigint[]) id`;
  }
}
