-- Transition: queued -> running, for the worker `worker`: up to `api_slots` api requests and
-- `watch_slots` watches, skipping rows other workers are claiming. Roles take turns: the oldest
-- queued request of every role first, then the second of every role, and so on, so that one
-- role's large batch cannot hold up another's call. A role takes at most `role_api_slots` api
-- requests and `role_watch_slots` watches, or, if it is one of `busy_roles` (those the worker
-- runs requests of), what its entry of `busy_api_room` and `busy_watch_room` leaves it. In the
-- same transaction their credentials are taken out of the database and their locks taken
-- (`locked` is false where the lock was held already, e.g. by the worker's own window). A request
-- dispatched to another worker a moment ago is left to it (_dispatched_elsewhere). A request for a
-- named cluster is claimed only by a worker that serves it (`clusters`). Ordered by id.
create or replace function omni_kube._claim_requests(
  worker uuid, api_slots int, watch_slots int, role_api_slots int, role_watch_slots int,
  busy_roles name[], busy_api_room int[], busy_watch_room int[], clusters text[])
  returns table (id bigint, kind text, requested_by name, method text, path text, body text,
                 stream boolean, patch_type text, server text, timeout_ms int,
                 use_worker_default boolean, cacert text, client_certificate text,
                 client_private_key text, token text, locked boolean, cluster text)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
#variable_conflict use_column
declare
  salt constant int4 := omni_kube._lock_salt();
  -- The last role, by name, with queued requests of each kind (read from the newest end of the
  -- index, where entries of rows claimed already are few). When that is one role and no other
  -- has any queued, the usual case, there is nothing to share: the short statement below.
  api_role name := (select r.requested_by from omni_kube.request r
                     where r.state = 'queued' and r.kind = 'api'
                     order by r.requested_by desc, r.id desc limit 1);
  watch_role name := (select r.requested_by from omni_kube.request r
                       where r.state = 'queued' and r.kind = 'watch'
                       order by r.requested_by desc, r.id desc limit 1);
  only_role name := coalesce(api_role, watch_role);
  room_api int;
  room_watch int;
  taken bigint[];
begin
  if only_role is null then
    return;
  end if;
  if coalesce(api_role = watch_role, true)
     and not exists (select from omni_kube.request r
                      where r.state = 'queued' and r.kind in ('api', 'watch')
                        and r.requested_by < only_role) then
    room_api := least(api_slots, coalesce(busy_api_room[array_position(busy_roles, only_role)],
                                          role_api_slots));
    room_watch := least(watch_slots,
                        coalesce(busy_watch_room[array_position(busy_roles, only_role)],
                                 role_watch_slots));
    -- The rows chosen stay locked until the claim below, in this same transaction.
    taken := array(select r.id from omni_kube.request r
                    where r.state = 'queued' and r.kind = 'api' and r.requested_by = only_role
                      and (r.cluster is null or r.cluster = any(clusters))
                      and not omni_kube._dispatched_elsewhere(r.dispatched, r.created_at, r.id, salt)
                    order by r.id limit greatest(room_api, 0) for update skip locked)
          || array(select r.id from omni_kube.request r
                    where r.state = 'queued' and r.kind = 'watch' and r.requested_by = only_role
                      and (r.cluster is null or r.cluster = any(clusters))
                    order by r.id limit greatest(room_watch, 0) for update skip locked);
  else
    taken := array(
      with recursive kinds(kind, slots, role_slots, busy_room) as (
        values ('api', api_slots, role_api_slots, busy_api_room),
               ('watch', watch_slots, role_watch_slots, busy_watch_room)
      ), queued_roles(kind, who, oldest) as (
        -- The roles with queued requests of each kind and the oldest of each, one index probe per
        -- role (a loose index scan of request_queued_by_role) rather than a read of every queued
        -- row. The probe steps over the entries of requests claimed while a snapshot still sees
        -- them (a batch's caller holds one); the claim below starts after them.
        select k.kind, f.requested_by, f.id from kinds k
         cross join lateral (
           select r.requested_by, r.id from omni_kube.request r
            where r.state = 'queued' and r.kind = k.kind
            order by r.requested_by, r.id limit 1) f
         where k.slots > 0
        union all
        select p.kind, f.requested_by, f.id from queued_roles p
         cross join lateral (
           select r.requested_by, r.id from omni_kube.request r
            where r.state = 'queued' and r.kind = p.kind and r.requested_by > p.who
            order by r.requested_by, r.id limit 1) f
      ), picked as (
        -- Each role's oldest, as many as it may still run, numbered within the role.
        select c.id, k.kind, k.slots, c.nth
          from queued_roles p join kinds k on k.kind = p.kind
         cross join lateral (
           select coalesce(k.busy_room[array_position(busy_roles, p.who)], k.role_slots)) room(n)
         cross join lateral (
           select x.id, row_number() over (order by x.id) as nth from (
             select r.id from omni_kube.request r
              where r.state = 'queued' and r.kind = p.kind and r.requested_by = p.who
                and r.id >= p.oldest
                and (r.cluster is null or r.cluster = any(clusters))
                and not omni_kube._dispatched_elsewhere(r.dispatched, r.created_at, r.id, salt)
              order by r.id limit least(room.n, k.slots) for update skip locked) x) c
         where room.n > 0
      ), chosen as (
        -- Every role's n-th before any role's n+1-th, within the kind's free slots.
        select t.id from (
          select p.id, p.slots, row_number() over (partition by p.kind order by p.nth, p.id) as place
            from picked p) t
         where t.place <= t.slots
      )
      select id from chosen);
  end if;
  return query
    with claimed as (
      update omni_kube.request r
         set state = 'running', worker_id = worker, claimed_at = clock_timestamp()
       where r.id = any(taken)
      returning r.id, r.kind, r.requested_by, r.method, r.path, r.body, r.stream, r.patch_type,
                r.server, r.timeout_ms, r.cluster
    ), credentials as (
      delete from omni_kube.request_credentials c using claimed
       where c.request_id = claimed.id
      returning c.*
    )
    select claimed.id, claimed.kind, claimed.requested_by, claimed.method::text, claimed.path,
           claimed.body::text, claimed.stream, claimed.patch_type, claimed.server,
           claimed.timeout_ms, coalesce(c.use_worker_default, false), c.cacert,
           c.client_certificate, c.client_private_key, c.token,
           pg_try_advisory_lock(omni_kube._lock_class(), omni_kube._lock_key(claimed.id, salt)),
           claimed.cluster
      from claimed left join credentials c on c.request_id = claimed.id
     order by claimed.id;
end
$$;
revoke all on function omni_kube._claim_requests(uuid, int, int, int, int, name[], int[], int[],
  text[]) from public;

-- The claim of workers of release 0.4.0 and older, which know no named cluster: they claim only
-- requests that name none, until they are restarted with this release.
create or replace function omni_kube._claim_requests(
  worker uuid, api_slots int, watch_slots int, role_api_slots int, role_watch_slots int,
  busy_roles name[], busy_api_room int[], busy_watch_room int[])
  returns table (id bigint, kind text, requested_by name, method text, path text, body text,
                 stream boolean, patch_type text, server text, timeout_ms int,
                 use_worker_default boolean, cacert text, client_certificate text,
                 client_private_key text, token text, locked boolean)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select c.id, c.kind, c.requested_by, c.method, c.path, c.body, c.stream, c.patch_type,
           c.server, c.timeout_ms, c.use_worker_default, c.cacert, c.client_certificate,
           c.client_private_key, c.token, c.locked
      from omni_kube._claim_requests(worker, api_slots, watch_slots, role_api_slots,
                                     role_watch_slots, busy_roles, busy_api_room, busy_watch_room,
                                     '{}') c
  $$;
revoke all on function omni_kube._claim_requests(uuid, int, int, int, int, name[], int[], int[])
  from public;
