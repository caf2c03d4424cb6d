-- omni_kube.grant_cluster(cluster, role) and revoke_cluster(cluster, role): who may name a
-- cluster in a call (cluster => ...). A grant reaches the role's members, as privileges do.
-- Superusers may use every cluster without one. Only superusers and the shim's owner may grant.

create or replace function omni_kube.grant_cluster(cluster text, role regrole) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if cluster is null or role is null then
    raise exception 'omni_kube: grant_cluster needs a cluster name and a role'
      using errcode = '22004', hint = 'select omni_kube.grant_cluster(''prod'', ''reporting'');';
  end if;
  if cluster = '' or cluster ~ '[[:cntrl:]]' or cluster ~ '^\{.*\}$' then
    raise exception 'omni_kube: a cluster name must be a non-empty name without control characters, not written like an array ({...})'
      using errcode = '22023', hint = 'Use the name of the context in the worker''s kubeconfig.';
  end if;
  insert into omni_kube.cluster_grant (cluster, grantee, granted_by)
  values (cluster, role, current_user)
  on conflict do nothing;
end
$$;

create or replace function omni_kube.revoke_cluster(cluster text, role regrole) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  delete from omni_kube.cluster_grant g
   where g.cluster = revoke_cluster.cluster and g.grantee = role;
  if not found then
    raise warning 'omni_kube: role % had no grant of cluster "%"', role, cluster;
  end if;
end
$$;

revoke all on function omni_kube.grant_cluster(text, regrole) from public;
revoke all on function omni_kube.revoke_cluster(text, regrole) from public;
