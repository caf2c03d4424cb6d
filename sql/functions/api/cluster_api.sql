-- api() for the internal functions that serve both the forms without a cluster and those with
-- one. `cluster` NULL: the caller's settings, as the forms without a cluster call it.
create or replace function omni_kube._cluster_api(
  path text, cluster text, method omni_kube.http_method default 'GET', body jsonb default null
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if cluster is null then
    return omni_kube.api(path, method => method, body => body);
  end if;
  return omni_kube.api(path, cluster => cluster, method => method, body => body);
end
$$;

-- The batch form: `clusters` NULL, the caller's settings; else one per path, NULL for the default
-- cluster (as for api(paths, clusters => ...)).
create or replace function omni_kube._cluster_api_batch(
  paths text[], clusters text[], methods omni_kube.http_method[] default null,
  bodies jsonb[] default null
) returns table (response jsonb, status int2)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if clusters is null then
    return query select * from omni_kube.api(paths, methods => methods, bodies => bodies);
  else
    return query select * from omni_kube.api(paths, clusters => clusters::omni_kube.cluster_names,
                                             methods => methods, bodies => bodies);
  end if;
end
$$;
