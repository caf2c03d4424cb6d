-- Is a worker alive (any, or the one given)? A living worker's queue session holds its worker
-- lock (its random lock_key) exclusively and is a backend of this server. Both are read live,
-- whatever the caller's snapshot: a member who holds that key after the worker died does not keep
-- it alive, since the backend is gone. The workers table itself is read with the caller's
-- snapshot; under REPEATABLE READ and SERIALIZABLE a worker registered since the transaction began
-- is found through the autonomous connection.
create or replace function omni_kube._worker_alive(worker uuid default null) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  -- The table is tiny: read it whole, whatever its caller's settings (_call turns sequential scans
  -- off, and the cost that gives one would have JIT compile this query on every call).
  set enable_seqscan = on
  set jit = off
  as $$
begin
  -- The backends are read live too: pg_stat_get_activity() answers from a copy of the backend
  -- table made once per transaction, in which a worker that died during a call's wait (one
  -- statement) stayed alive while a member held its key. (This also discards the caller's copy of
  -- the cumulative statistics; its next read of them takes a new one.)
  perform pg_stat_clear_snapshot();
  if exists (
       select from omni_kube.workers w
        where (worker is null or w.id = worker)
          and omni_kube._worker_lock_held(coalesce(w.lock_key, omni_kube._worker_lock_key(w.id)))
          and exists (select from pg_stat_get_activity(w.lock_backend_pid))) then
    return true;
  end if;
  if current_setting('transaction_isolation') <> 'read committed' then
    return omni_kube._autonomous(
      format('select to_jsonb(omni_kube._worker_alive(%L::uuid))', worker))::boolean;
  end if;
  return false;
end
$$;
grant execute on function omni_kube._worker_alive(uuid) to omni_kube;

-- Whether a registered worker's lock is held (any worker's, or the one given's): what callers ask
-- before each enqueue and while they wait, so only the lock is tried, not the backend behind it
-- (reading those costs a copy of the server's backend table). A member holding a dead worker's
-- key can fool it; callers ask _worker_alive too once a wait has lasted a while. A worker the
-- caller's snapshot cannot see yet is asked for as _worker_alive does.
create or replace function omni_kube._worker_locked(worker uuid default null) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = on
  set jit = off
  as $$
begin
  return exists (select from omni_kube.workers w
                  where (worker is null or w.id = worker)
                    and omni_kube._worker_lock_held(coalesce(w.lock_key,
                                                             omni_kube._worker_lock_key(w.id))))
         or (current_setting('transaction_isolation') <> 'read committed'
             and omni_kube._worker_alive(worker));
end
$$;
revoke all on function omni_kube._worker_locked(uuid) from public;
