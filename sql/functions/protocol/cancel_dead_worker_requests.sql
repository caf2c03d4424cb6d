-- Transition: running -> cancelled for those of `ids` whose worker is no longer alive. One answer
-- for a dead worker, whoever notices it: a waiting caller (_await) or another worker's
-- maintenance. The call may or may not have reached the API server, so it is never run again.
create or replace function omni_kube._cancel_dead_worker_requests(ids bigint[]) returns jsonb
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube._cancel_requests(
      array(select id from omni_kube.request
             where id = any(ids) and state = 'running'
               and not omni_kube._worker_alive(worker_id)),
      'the worker running this request stopped before it finished; it was not retried')
  $$;
revoke all on function omni_kube._cancel_dead_worker_requests(bigint[]) from public;
