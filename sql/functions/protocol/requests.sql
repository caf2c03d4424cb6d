-- Inspection: each role sees only its own requests, sync (kind api or watch) and async (kind
-- async, ids of their own); never credentials. `attempts`, `next_attempt_at` and the callback's
-- outcome are an async request's.
create or replace view omni_kube.requests with (security_barrier) as
  select id, kind, method, path, state, status, error, requested_by, worker_id, created_at,
         claimed_at, finished_at, finished_at - created_at as duration, null::int as attempts,
         null::timestamptz as next_attempt_at, null::text as callback,
         null::text as callback_error
    from omni_kube.request
   where exists (select from pg_roles r
                  where r.rolname = requested_by and pg_has_role(current_user, r.oid, 'MEMBER'))
  union all
  select id, 'async', method, path, state, status, error, requested_by, worker_id, created_at,
         claimed_at, finished_at, finished_at - created_at, attempts,
         case when state = 'queued' then next_attempt_at end, callback_state, callback_error
    from omni_kube.async_request
   where exists (select from pg_roles r
                  where r.rolname = requested_by and pg_has_role(current_user, r.oid, 'MEMBER'));
grant select on omni_kube.requests to omni_kube;
