-- Transition: queued -> running, for worker `worker`: up to `slots` requests whose next attempt is
-- due, oldest first, skipping rows other workers are claiming; their secrets are taken out of the
-- database in the same statement. `credentials_lost`: the request had secrets and a crash took
-- them (async_credentials is unlogged); the worker fails it without sending it (OKQ03).
create or replace function omni_kube._async_claim(worker uuid, slots int)
  returns table (id bigint, requested_by name, method text, path text, body text,
                 stream boolean, patch_type text, server text, timeout_ms int,
                 use_worker_default boolean, cacert text, client_certificate text,
                 client_private_key text, token text, attempts int, retries int,
                 idempotent boolean, credentials_lost boolean)
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
    select claimed.id, claimed.requested_by, claimed.method::text, claimed.path,
           claimed.body::text, claimed.stream, claimed.patch_type, claimed.server,
           claimed.timeout_ms, claimed.use_worker_default, claimed.cacert, c.client_certificate,
           c.client_private_key, c.token, claimed.attempts, claimed.retries,
           omni_kube._idempotent(claimed.method, claimed.patch_type),
           claimed.has_secret and c.request_id is null
      from claimed left join credentials c on c.request_id = claimed.id
     order by claimed.id;
end
$$;
revoke all on function omni_kube._async_claim(uuid, int) from public;
