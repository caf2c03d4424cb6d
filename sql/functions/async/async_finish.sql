-- Transition: running -> done | failed, or back to queued for another attempt at `retry_at`, for
-- the requests of `ids` that `worker` is running; one element per request in each array, as
-- _finish_requests takes them. A finished request with a callback is left for it (pending).
-- Returns how many callbacks became pending.
create or replace function omni_kube._async_finish(
  worker uuid, ids bigint[], statuses int2[], bodies text[], is_json boolean[], stored boolean[],
  errors text[], error_codes text[], retry_at timestamptz[], tolerant boolean default false
) returns int
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_generic_plan
  as $$
declare
  callbacks int;
  now constant timestamptz := clock_timestamp();
begin
  -- Durable before the worker forgets the call: a result lost in a crash would leave the request
  -- running, and a POST's outcome unknown.
  perform set_config('synchronous_commit', 'on', true);
  with written as (
    update omni_kube.async_request r
       set state = case when x.retry_at is not null then 'queued'
                        when x.error is null then 'done'
                        else 'failed' end::omni_kube.request_state,
           status = x.status,
           response = case when x.stored then r.response
                           when tolerant then omni_kube._response_jsonb(x.body, x.is_json)
                           when x.body is null or x.body = '' then null
                           when x.is_json then x.body::jsonb
                           else to_jsonb(x.body) end,
           error = x.error,
           error_code = x.error_code,
           next_attempt_at = coalesce(x.retry_at, r.next_attempt_at),
           finished_at = case when x.retry_at is null then now end,
           callback_state = case when x.retry_at is null and r.on_done is not null then 'pending' end
      from unnest(ids, statuses, bodies, is_json, stored, errors, error_codes, retry_at)
             as x(id, status, body, is_json, stored, error, error_code, retry_at)
     where r.id = x.id and r.state = 'running' and r.worker_id = worker
    returning r.callback_state
  )
  select count(*) filter (where callback_state = 'pending') into callbacks from written;
  return callbacks;
end
$$;
revoke all on function omni_kube._async_finish(uuid, bigint[], int2[], text[], boolean[],
  boolean[], text[], text[], timestamptz[], boolean) from public;
