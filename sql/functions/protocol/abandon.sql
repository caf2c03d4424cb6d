-- Marks unfinished requests as cancelled or failed, autonomously, and tells the worker running them
-- to stop (NOTIFY omni_kube_cancel with the ids).
create or replace function omni_kube._abandon(ids bigint[], new_state omni_kube.request_state, reason text)
  returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._autonomous(format(
    $q$with abandoned as (
         update omni_kube.request set state = %L, error = %L, finished_at = clock_timestamp()
          where id = any(%L::bigint[]) and state in ('queued', 'running') returning id),
       forgotten as (delete from omni_kube.request_credentials where request_id in (select id from abandoned))
       select to_jsonb(pg_notify('omni_kube_cancel', string_agg(id::text, ','))) from abandoned$q$,
    new_state, reason, ids));
end
$$;
revoke all on function omni_kube._abandon(bigint[], omni_kube.request_state, text) from public;
