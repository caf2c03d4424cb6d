-- Transition: queued -> running, for the worker `worker`: up to `api_slots` api requests and
-- `watch_slots` watches, oldest first, skipping rows other workers are claiming. In the same
-- statement their credentials are taken out of the database and their locks taken (`locked` is
-- false where the lock was held already, e.g. by the worker's own window). Ordered by id.
create or replace function omni_kube._claim_requests(worker uuid, api_slots int, watch_slots int)
  returns table (id bigint, kind text, method text, path text, body text, stream boolean,
                 patch_type text, server text, timeout_ms int, use_worker_default boolean,
                 cacert text, client_certificate text, client_private_key text, token text,
                 locked boolean)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
declare
  salt constant int4 := omni_kube._lock_salt();
begin
  return query
    with api as (
      select r.id from omni_kube.request r where r.state = 'queued' and r.kind = 'api'
       order by r.id limit api_slots for update skip locked
    ), watch as (
      select r.id from omni_kube.request r where r.state = 'queued' and r.kind = 'watch'
       order by r.id limit watch_slots for update skip locked
    ), claimed as (
      update omni_kube.request r
         set state = 'running', worker_id = worker, claimed_at = clock_timestamp()
       where r.id in (select id from api union all select id from watch)
      returning r.id, r.kind, r.method, r.path, r.body, r.stream, r.patch_type, r.server,
                r.timeout_ms
    ), credentials as (
      delete from omni_kube.request_credentials c using claimed
       where c.request_id = claimed.id
      returning c.*
    )
    select claimed.id, claimed.kind, claimed.method::text, claimed.path, claimed.body::text,
           claimed.stream, claimed.patch_type, claimed.server, claimed.timeout_ms,
           coalesce(c.use_worker_default, false), c.cacert, c.client_certificate,
           c.client_private_key, c.token,
           pg_try_advisory_lock(omni_kube._lock_class(), omni_kube._lock_key(claimed.id, salt))
      from claimed left join credentials c on c.request_id = claimed.id
     order by claimed.id;
end
$$;
revoke all on function omni_kube._claim_requests(uuid, int, int) from public;
