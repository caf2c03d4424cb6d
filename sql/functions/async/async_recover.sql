-- Requests whose call was lost, found at each worker's heartbeat:
--
-- * those of workers that stopped mid-call (killed, or their host lost). Whether such a call
--   reached the API server is unknown: an idempotent one is queued again at once (the lost attempt
--   not counted against its retries); any other is failed with OKQ02 and never sent again;
-- * those marked running for `worker` that it never sent (`unsettled` are those it sent and has
--   not seen written): their claim committed but its answer never reached the worker (the session
--   was lost, or the claim was given up as hung). They are queued again, whatever their method.
--
-- Returns how many were recovered.
create or replace function omni_kube._async_recover(worker uuid, unsettled bigint[]) returns int
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  recovered int;
  unsent int;
begin
  perform set_config('synchronous_commit', 'on', true);
  with dead_workers as (
    select d.worker_id from (
      select distinct r.worker_id from omni_kube.async_request r
       where r.state = 'running' and r.worker_id <> worker) d
     where not omni_kube._worker_alive(d.worker_id)
  ), dead as (
    select r.id, omni_kube._idempotent(r.method, r.patch_type) as idempotent
      from omni_kube.async_request r
     where r.state = 'running' and r.worker_id in (select worker_id from dead_workers)
     for update skip locked
  ), requeued as (
    update omni_kube.async_request r
       set state = case when dead.idempotent then 'queued'
                        else 'failed' end::omni_kube.request_state,
           attempts = r.attempts - case when dead.idempotent then 1 else 0 end,
           next_attempt_at = now(),
           error = case when dead.idempotent
                        then 'its worker stopped during the call; it was sent again'
                        else format('its worker stopped before the outcome was recorded: the %s may or may not have reached the API server, and is never sent twice', r.method)
                   end,
           error_code = case when not dead.idempotent then 'OKQ02' end,
           finished_at = case when not dead.idempotent then clock_timestamp() end,
           callback_state = case when not dead.idempotent and r.on_done is not null
                                 then 'pending' end
      from dead where r.id = dead.id
    returning r.id
  )
  select count(*) into recovered from requeued;
  with never_sent as (
    select r.id from omni_kube.async_request r
     where r.state = 'running' and r.worker_id = worker and r.id <> all(unsettled)
     for update skip locked
  ), requeued as (
    update omni_kube.async_request r
       set state = 'queued', attempts = r.attempts - 1, next_attempt_at = now()
      from never_sent where r.id = never_sent.id
    returning r.id
  )
  select count(*) into unsent from requeued;
  return recovered + unsent;
end
$$;
revoke all on function omni_kube._async_recover(uuid, bigint[]) from public;
