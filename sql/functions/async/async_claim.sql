-- Transition: queued -> running, for worker `worker`: up to `slots` requests whose next attempt is
-- due, oldest first, skipping rows other workers are claiming; their secrets are taken out of the
-- database in the same statement. `credentials_lost`: the request had secrets and a crash took
-- them (async_credentials is unlogged); the worker fails it without sending it (OKQ03). Ordered
-- by id; a CA the row before has too comes as NULL with `same_cacert` (a batch of calls to one
-- server names its CA once, not once per row).
create or replace function omni_kube._async_claim(worker uuid, slots int)
  returns table (id bigint, requested_by name, method text, path text, body text,
                 stream boolean, patch_type text, server text, timeout_ms int,
                 use_worker_default boolean, cacert text, client_certificate text,
                 client_private_key text, token text, attempts int, retries int,
                 idempotent boolean, credentials_lost boolean, same_cacert boolean)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set plan_cache_mode = force_generic_plan
  as $$
#variable_conflict use_column
begin
  -- Durable before anything is sent, whatever the session's setting: after a crash, a request the
  -- worker may have sent must not look queued, or a POST would be sent twice.
  perform set_config('synchronous_commit', 'on', true);
  return query
    with taken as (
      select r.id from omni_kube.async_request r
       where r.state = 'queued' and r.next_attempt_at <= now()
       order by r.next_attempt_at, r.id
       limit greatest(slots, 0) for update skip locked
    ), claimed as (
      update omni_kube.async_request r
         set state = 'running', worker_id = worker, claimed_at = clock_timestamp(),
             attempts = r.attempts + 1
        from taken where r.id = taken.id
      returning r.*
    ), credentials as (
      delete from omni_kube.async_credentials c using claimed
       where c.request_id = claimed.id
      returning c.*
    )
    select x.id, x.requested_by, x.method, x.path, x.body, x.stream, x.patch_type, x.server,
           x.timeout_ms, x.use_worker_default, case when not x.same_cacert then x.cacert end,
           x.client_certificate, x.client_private_key, x.token, x.attempts, x.retries,
           x.idempotent, x.credentials_lost, x.same_cacert
      from (
        select claimed.id, claimed.requested_by, claimed.method::text as method, claimed.path,
               claimed.body::text as body, claimed.stream, claimed.patch_type, claimed.server,
               claimed.timeout_ms, claimed.use_worker_default, claimed.cacert,
               c.client_certificate, c.client_private_key, c.token, claimed.attempts,
               claimed.retries,
               omni_kube._idempotent(claimed.method, claimed.patch_type) as idempotent,
               claimed.has_secret and c.request_id is null as credentials_lost,
               coalesce(claimed.cacert = lag(claimed.cacert) over (order by claimed.id), false)
                 as same_cacert
          from claimed left join credentials c on c.request_id = claimed.id) x
     order by x.id;
end
$$;
revoke all on function omni_kube._async_claim(uuid, int) from public;
