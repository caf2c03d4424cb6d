-- Transition: queued -> running, for the dispatched requests of `ids` (GETs and HEADs that carry
-- no secret, see _insert_requests) that the worker `worker` started on receiving them, holding
-- their locks. Those no longer queued (their caller gave up, or another worker's claim took them
-- first) are left as they are. Their credentials rows, which hold no secret, go.
-- Returns the ids claimed.
create or replace function omni_kube._claim_dispatched(worker uuid, ids bigint[])
  returns setof bigint
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    with claimed as (
      update omni_kube.request r
         set state = 'running', worker_id = worker, claimed_at = clock_timestamp()
       where r.id = any(ids) and r.state = 'queued'
      returning r.id
    ), forgotten as (
      delete from omni_kube.request_credentials c using claimed where c.request_id = claimed.id
    )
    select id from claimed
  $$;
revoke all on function omni_kube._claim_dispatched(uuid, bigint[]) from public;
