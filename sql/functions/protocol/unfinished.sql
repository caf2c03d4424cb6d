-- Which of `ids` are unfinished (queued or running), keyed by id, with their state, worker and
-- named cluster (not their responses, which may be large). Read with a fresh snapshot:
-- directly under READ COMMITTED (a new snapshot per statement), through the autonomous connection
-- under REPEATABLE READ and SERIALIZABLE.
-- (The direct read is a static statement planned once per session, not once per call: an index
-- scan, whatever the table's statistics said when it was planned.)
create or replace function omni_kube._unfinished(ids bigint[]) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = off
  set plan_cache_mode = force_generic_plan
  as $$
declare
  result jsonb;
begin
  if current_setting('transaction_isolation') = 'read committed' then
    select coalesce(jsonb_object_agg(r.id, jsonb_build_object('state', r.state,
                                                              'worker_id', r.worker_id,
                                                              'cluster', r.cluster)), '{}')
      into result
      from omni_kube.request r where r.id = any(ids) and r.state in ('queued', 'running');
    return result;
  end if;
  return omni_kube._autonomous(format(
    $q$select coalesce(jsonb_object_agg(id, jsonb_build_object('state', state,
                                                                'worker_id', worker_id,
                                                                'cluster', cluster)), '{}')
         from omni_kube.request where id = any(%L::bigint[]) and state in ('queued', 'running')$q$,
    ids));
end
$$;
revoke all on function omni_kube._unfinished(bigint[]) from public;
