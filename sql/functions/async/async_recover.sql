-- The requests of workers that stopped mid-call (killed, or their host lost), found by any other
-- worker's heartbeat. Whether such a call reached the API server is unknown: an idempotent one is
-- queued again at once (the lost attempt not counted against its retries); any other is failed
-- with OKQ02 and never sent again. Returns how many were recovered.
create or replace function omni_kube._async_recover(worker uuid) returns int
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  recovered int;
begin
  perform set_config('synchronous_commit', 'on', true);
  with dead_workers as (
    select d.worker_id from (
      select distinct r.worker_id from omni_kube.async_request r
       where r.state = 'running' and r.worker_id <> worker) d
     where not omni_kube._worker_alive(d.worker_id)
  ), dead as (
    select r.id from omni_kube.async_request r
     where r.state = 'running' and r.worker_id in (select worker_id from dead_workers)
     for update skip locked
  ), recovered as (
    update omni_kube.async_request r
       set state = case when omni_kube._idempotent(r.method, r.patch_type) then 'queued'
                        else 'failed' end::omni_kube.request_state,
           attempts = case when omni_kube._idempotent(r.method, r.patch_type) then r.attempts - 1
                           else r.attempts end,
           next_attempt_at = now(),
           error = case when omni_kube._idempotent(r.method, r.patch_type)
                        then 'its worker stopped mid-call; it was sent again'
                        else format('its worker stopped before the outcome was recorded: the %s may or may not have reached the API server, and is never sent twice', r.method)
                   end,
           error_code = case when omni_kube._idempotent(r.method, r.patch_type) then null
                             else 'OKQ02' end,
           finished_at = case when omni_kube._idempotent(r.method, r.patch_type) then null
                              else clock_timestamp() end,
           callback_state = case when not omni_kube._idempotent(r.method, r.patch_type)
                                      and r.on_done is not null then 'pending' end
      from dead where r.id = dead.id
    returning r.id
  )
  select count(*) into recovered from recovered;
  return recovered;
end
$$;
revoke all on function omni_kube._async_recover(uuid) from public;
