-- Raises that no live worker can serve `cluster`: OKW04, with what the workers that have it in
-- their kubeconfigs found wrong, if any.
create or replace function omni_kube._raise_unserved(cluster text) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = on
  set jit = off
  as $$
declare
  reason constant text := (select wc.last_error from omni_kube.worker_cluster wc
                            where wc.name = cluster and not wc.usable
                              and omni_kube._worker_locked(wc.worker_id)
                            order by wc.checked_at desc nulls last limit 1);
begin
  if reason is not null then
    raise exception 'omni_kube: no worker can use cluster "%"', cluster
      using errcode = 'OKW04', detail = reason,
        hint = 'Fix the context in the worker''s kubeconfig and restart the worker.';
  end if;
  raise exception 'omni_kube: no worker serves cluster "%"', cluster
    using errcode = 'OKW04',
      hint = format('omni_kube.clusters lists the clusters the running workers serve. Start a worker whose kubeconfig has a context named %L (--kubeconfig, --contexts).', cluster);
end
$$;
revoke all on function omni_kube._raise_unserved(text) from public;

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
    if cluster = '' or cluster ~ '[[:cntrl:]]' or cluster ~ '^\{.*\}$' then
      raise exception 'omni_kube: a cluster name must be a non-empty name without control characters, not written like an array ({...})'
        using errcode = '22023', hint = 'omni_kube.clusters lists the clusters the workers serve.';
    end if;
    if not omni_kube._cluster_granted(requested_by, cluster) then
      raise exception 'omni_kube: role % may not use cluster "%"', requested_by, cluster
        using errcode = '42501',
          hint = format('A superuser or the shim''s owner grants it: select omni_kube.grant_cluster(%L, %L);',
                        cluster, requested_by);
    end if;
    if not omni_kube._cluster_served(cluster) then
      perform omni_kube._raise_unserved(cluster);
    end if;
  end loop;
end
$$;
revoke all on function omni_kube._check_clusters(name, text[], int, text, text,
  omni_kube.client_certificate, text) from public;

-- A server named in SQL (server => or the omni_kube.server setting) must be one that every live
-- worker calls (its --explicit-servers: any, none, or a comma-separated list of origins), since any
-- of them may claim the call. A free server lets any member make the worker fetch any HTTPS
-- address it can reach. The origin is compared as the worker writes it: lower case, no trailing
-- slash, no default port.
create or replace function omni_kube._check_explicit_server(server text) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- Tiny tables, read whole whatever the caller's settings (as _worker_alive reads them).
  set enable_seqscan = on
  set jit = off
  as $$
declare
  origin constant text := regexp_replace(rtrim(lower(server), '/'), ':443$', '');
  refusing text;
begin
  select w.explicit_servers into refusing
    from omni_kube.workers w
   where coalesce(w.explicit_servers, 'any') <> 'any'
     and (w.explicit_servers = 'none' or not origin = any(string_to_array(w.explicit_servers, ',')))
     and omni_kube._worker_locked(w.id)
   limit 1;
  if refusing = 'none' then
    raise exception 'omni_kube: the workers of this database call no server named in SQL'
      using errcode = '42501',
        hint = 'Name a cluster the workers serve instead (cluster => ..., listed in omni_kube.clusters), or leave server unset for the default cluster. The operator chooses with the worker flag --explicit-servers.';
  elsif refusing is not null then
    raise exception 'omni_kube: the workers of this database do not call server "%"', server
      using errcode = '42501',
        hint = format('A worker calls only %s (worker flag --explicit-servers), or a named cluster (cluster => ..., listed in omni_kube.clusters).',
                      replace(refusing, ',', ', '));
  end if;
end
$$;
revoke all on function omni_kube._check_explicit_server(text) from public;
