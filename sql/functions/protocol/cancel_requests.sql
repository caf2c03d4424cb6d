-- Transition: queued or running -> cancelled, with the reason, for those of `ids` still unfinished;
-- their credentials go. If any was running, the workers are told to look (NOTIFY
-- omni_kube_cancel): a worker stops the calls whose rows say they are no longer running, and acts
-- on nothing else, so the notification carries no ids and anyone may send it to no effect.
-- Returns the number cancelled, as jsonb so that _autonomous can carry it.
create or replace function omni_kube._cancel_requests(ids bigint[], reason text) returns jsonb
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    with cancelled as (
      update omni_kube.request r
         set state = 'cancelled', error = reason, finished_at = clock_timestamp()
        from omni_kube.request before
       where r.id = any(ids) and r.state in ('queued', 'running') and before.id = r.id
      returning r.id, before.state = 'running' as was_running
    ), forgotten as (
      delete from omni_kube.request_credentials where request_id in (select id from cancelled)
    ), told as (
      select pg_notify('omni_kube_cancel', '') from cancelled where was_running limit 1
    )
    select to_jsonb(count(*)) from cancelled, (select count(*) from told) t
  $$;
revoke all on function omni_kube._cancel_requests(bigint[], text) from public;
