-- The checks of a call that names clusters (one per path, NULL for none), made where the call is
-- made: one per path, none empty, no server or credentials beside them, each granted to the
-- caller's role and served by a live worker.
create or replace function omni_kube._check_clusters(
  requested_by name, clusters text[], path_count int, server text, cacert text,
  clientcert omni_kube.client_certificate, token text) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  cluster text;
begin
  if array_ndims(clusters) > 1 or cardinality(clusters) <> path_count then
    raise exception 'omni_kube: % clusters for % paths', cardinality(clusters), path_count
      using errcode = '2202E',
        hint = 'Give one cluster per path (NULL for the default cluster), or cluster => for all of them.';
  end if;
  if not exists (select from unnest(clusters) c where c is not null) then
    return;
  end if;
  if server is not null or cacert is not null or token is not null
     or (clientcert).certificate is not null or (clientcert).private_key is not null then
    raise exception 'omni_kube: a call names a cluster or a server and credentials, not both'
      using errcode = '22023',
        hint = 'A named cluster brings its own server and credentials (the worker''s kubeconfig). Drop server, cacert, clientcert and token, or drop cluster.';
  end if;
  for cluster in select distinct c from unnest(clusters) c where c is not null order by 1 loop
    if cluster = '' or cluster ~ '[[:cntrl:]]' then
      raise exception 'omni_kube: a cluster name must be a non-empty name without control characters'
        using errcode = '22023', hint = 'omni_kube.clusters lists the clusters the workers serve.';
    end if;
    if not omni_kube._cluster_usable(requested_by, cluster) then
      raise exception 'omni_kube: role % may not use cluster "%"', requested_by, cluster
        using errcode = '42501',
          hint = format('A superuser or the shim''s owner grants it: select omni_kube.grant_cluster(%L, %L);',
                        cluster, requested_by);
    end if;
    if not exists (select from omni_kube.worker_cluster wc
                    where wc.name = cluster and omni_kube._worker_locked(wc.worker_id)) then
      raise exception 'omni_kube: no worker serves cluster "%"', cluster
        using errcode = 'OKW04',
          hint = format('omni_kube.clusters lists the clusters the running workers serve. Start a worker whose kubeconfig has a context named %L (--kubeconfig, --contexts).', cluster);
    end if;
  end loop;
end
$$;
revoke all on function omni_kube._check_clusters(name, text[], int, text, text,
  omni_kube.client_certificate, text) from public;

-- A server named in SQL (server => or the omni_kube.server setting) must be one the workers may
-- call: the instance setting explicit_servers, written by each worker from --explicit-servers
-- (any, none, or a comma-separated list). A free server lets any member make the worker fetch
-- any HTTPS address it can reach.
create or replace function omni_kube._check_explicit_server(server text) returns void
  language plpgsql stable
  set search_path = pg_catalog, pg_temp
  as $$
declare
  allowed constant text := (select s.value from omni_kube.instance_settings s
                             where s.name = 'explicit_servers');
begin
  if allowed is null or allowed = 'any' then
    return;
  end if;
  if allowed = 'none' then
    raise exception 'omni_kube: the workers of this database call no server named in SQL'
      using errcode = '42501',
        hint = 'Name a cluster the workers serve instead (cluster => ..., listed in omni_kube.clusters), or leave server unset for the default cluster. The operator chooses with the worker flag --explicit-servers.';
  end if;
  if not rtrim(lower(server), '/') = any(string_to_array(allowed, ',')) then
    raise exception 'omni_kube: the workers of this database do not call server "%"', server
      using errcode = '42501',
        hint = format('They call only %s (worker flag --explicit-servers), or a named cluster (cluster => ..., listed in omni_kube.clusters).',
                      replace(allowed, ',', ', '));
  end if;
end
$$;
revoke all on function omni_kube._check_explicit_server(text) from public;
