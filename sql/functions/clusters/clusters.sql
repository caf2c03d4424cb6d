-- Whether `who` may use the named cluster `cluster`: a superuser, or a role granted it
-- (omni_kube.grant_cluster) or a member of one. (Security definer: it tells a member only what
-- omni_kube.clusters shows it, whether a role may use a cluster.)
create or replace function omni_kube._cluster_usable(who name, cluster text) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select coalesce((select r.rolsuper from pg_roles r where r.rolname = who), false)
        or exists (select from omni_kube.cluster_grant g
                    where g.cluster = _cluster_usable.cluster
                      and exists (select from pg_roles r where r.oid = g.grantee)
                      and pg_has_role(who, g.grantee, 'USAGE'))
  $$;
revoke all on function omni_kube._cluster_usable(name, text) from public;
grant execute on function omni_kube._cluster_usable(name, text) to omni_kube;

-- omni_kube.clusters: the named clusters, one row per name: those the running workers serve (from
-- their kubeconfigs) and those granted but served by none. What the workers last found of each:
-- server, how they authenticate, the server's version, whether it answered, the last error. Never
-- a credential. `usable`: whether the querying role may name it.
create or replace view omni_kube.clusters as
  with served as (
    select wc.*, w.last_seen
      from omni_kube.worker_cluster wc
      join omni_kube.workers w on w.id = wc.worker_id
     where omni_kube._worker_alive(w.id)
  ), names as (
    select s.name from served s
    union
    select g.cluster from omni_kube.cluster_grant g
  )
  select n.name,
         latest.server,
         latest.auth,
         latest.server_version,
         latest.reachable,
         latest.last_error,
         latest.checked_at,
         coalesce((select array_agg(s.worker_id order by s.worker_id) from served s
                    where s.name = n.name), '{}') as workers,
         omni_kube._cluster_usable(current_user, n.name) as usable
    from names n
    left join lateral (
      select s.server, s.auth, s.server_version, s.reachable, s.last_error, s.checked_at
        from served s where s.name = n.name
       order by s.checked_at desc nulls last, s.last_seen desc limit 1) latest on true;

grant select on omni_kube.clusters to omni_kube;
