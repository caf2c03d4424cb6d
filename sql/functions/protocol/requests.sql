-- Inspection: each role sees only its own requests; never credentials.
create or replace view omni_kube.requests with (security_barrier) as
  select id, kind, method, path, state, status, error, requested_by, worker_id, created_at,
         claimed_at, finished_at, finished_at - created_at as duration
    from omni_kube.request
   where exists (select from pg_roles r
                  where r.rolname = requested_by and pg_has_role(current_user, r.oid, 'MEMBER'));
grant select on omni_kube.requests to omni_kube;
