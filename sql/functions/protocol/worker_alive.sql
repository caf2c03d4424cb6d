-- Is a worker alive (any, or the one given)? Each worker's queue session holds its own lock
-- exclusively and a common one shared: trying to take one tells whether it is held, whatever the
-- caller's snapshot or isolation level, without scanning pg_locks. A lock taken by the try is
-- released at once.
create or replace function omni_kube._worker_alive(worker uuid default null) returns boolean
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  class constant int4 := omni_kube._worker_lock_class();
  key constant int4 := coalesce(omni_kube._worker_lock_key(worker), 0);
begin
  if worker is null then
    if pg_try_advisory_lock(class, 0) then
      perform pg_advisory_unlock(class, 0);
      return false;
    end if;
  elsif pg_try_advisory_lock_shared(class, key) then
    perform pg_advisory_unlock_shared(class, key);
    return false;
  end if;
  return true;
end
$$;

-- Internal functions run only inside omni_kube._call (as the installing role) or in the worker.
grant execute on function omni_kube._worker_alive(uuid) to omni_kube;
