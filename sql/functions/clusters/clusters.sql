-- Whether `who` may use the named cluster `cluster`: a superuser, or a role granted it
-- (omni_kube.grant_cluster) or a member of one. Internal: it would tell anyone who is granted what.
create or replace function omni_kube._cluster_granted(who name, cluster text) returns boolean
  language sql stable
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = on
  set jit = off
  as $$
    select coalesce((select r.rolsuper from pg_roles r where r.rolname = who), false)
        or exists (select from omni_kube.cluster_grant g
                    where g.cluster = _cluster_granted.cluster
                      and exists (select from pg_roles r where r.oid = g.grantee)
                      and pg_has_role(who, g.grantee, 'USAGE'))
  $$;
revoke all on function omni_kube._cluster_granted(name, text) from public;

-- Whether the session's role (SET ROLE's, else the login's: the role a call is made for) may use
-- `cluster`. (Security definer, to read the grants; it tells a member only about itself.)
create or replace function omni_kube._cluster_granted(cluster text) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube._cluster_granted(
      case when current_setting('role') = 'none' then session_user else current_setting('role') end,
      cluster)
  $$;
revoke all on function omni_kube._cluster_granted(text) from public;
grant execute on function omni_kube._cluster_granted(text) to omni_kube;

-- Whether a live worker serves `cluster` and can use it, read from the workers' locks (and with
-- `thorough`, from their backends too, as _worker_alive reads them).
create or replace function omni_kube._cluster_served(cluster text, thorough boolean default false)
  returns boolean
  language sql volatile
  set search_path = pg_catalog, pg_temp
  -- Tiny tables, read whole whatever the caller's settings (as _worker_alive reads them).
  set enable_seqscan = on
  set jit = off
  as $$
    select exists (select from omni_kube.worker_cluster wc
                    where wc.name = _cluster_served.cluster and wc.usable
                      and omni_kube._worker_locked(wc.worker_id)
                      and (not thorough or omni_kube._worker_alive(wc.worker_id)))
  $$;
revoke all on function omni_kube._cluster_served(text, boolean) from public;

-- omni_kube.clusters: the named clusters, one row per name: those the live workers serve (from
-- their kubeconfigs) and those granted but served by none. What the workers last found of each:
-- server, how they authenticate, the server's version, whether it answered, the last error (a
-- worker that cannot use it says why). Never a credential. `workers`: the live workers that can
-- use it; `granted`: whether the querying role may name it.
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
                    where s.name = n.name and s.usable), '{}') as workers,
         omni_kube._cluster_granted(n.name) as granted
    from names n
    left join lateral (
      select s.server, s.auth, s.server_version, s.reachable, s.last_error, s.checked_at
        from served s where s.name = n.name
       order by s.usable desc, s.checked_at desc nulls last, s.last_seen desc limit 1) latest on true;

grant select on omni_kube.clusters to omni_kube;

-- A cluster name is never written as an array literal ('{...}'). Where a form with a cluster puts
-- it in the place of an array parameter of the form without one, a call written for the latter
-- with an untyped array literal there resolves to the former: this is that array, else NULL.
create or replace function omni_kube._array_in_cluster_place(cluster text) returns text[]
  language sql immutable
  set search_path = pg_catalog, pg_temp
  as $$ select case when cluster ~ '^\{.*\}$' then cluster::text[] end $$;
revoke all on function omni_kube._array_in_cluster_place(text) from public;
grant execute on function omni_kube._array_in_cluster_place(text) to omni_kube;
