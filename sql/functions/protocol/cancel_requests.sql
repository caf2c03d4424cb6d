-- Transition: queued or running -> cancelled, with the reason, for those of `ids` still unfinished;
-- their credentials go, and the workers running them are told to stop (NOTIFY omni_kube_cancel
-- with the ids). Returns the number cancelled, as jsonb so that _autonomous can carry it.
create or replace function omni_kube._cancel_requests(ids bigint[], reason text) returns jsonb
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    with cancelled as (
      update omni_kube.request set state = 'cancelled', error = reason, finished_at = clock_timestamp()
       where id = any(ids) and state in ('queued', 'running')
      returning id
    ), forgotten as (
      delete from omni_kube.request_credentials where request_id in (select id from cancelled)
    ), told as (
      select pg_notify('omni_kube_cancel', string_agg(id::text, ',')) from cancelled
       having count(*) > 0
    )
    select to_jsonb(count(*)) from cancelled, (select count(*) from told) t
  $$;
revoke all on function omni_kube._cancel_requests(bigint[], text) from public;
