-- Single call: the response body; a status of 400 or more raises.
create or replace function omni_kube.api(
  path text,
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token'),
  method omni_kube.http_method default 'GET',
  body jsonb default null,
  stream boolean default false
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  result record;
begin
  -- _call checks the path (and everything else).
  select * into result from omni_kube._call('api', array[path], array[method],
                                            array[body], stream, server, cacert, clientcert, token);
  if result.state = 'done' and result.status < 400 then
    return result.response;
  end if;
  perform omni_kube._raise_for(result.state, result.status, result.response, result.error,
                               format('%s %s', method, path), result.error_code);
  return null; -- not reached: _raise_for raises
end
$$;

-- Single call to a named cluster (cluster => 'name'): its server and credentials are the worker's
-- (its kubeconfig's context of that name); server and credentials may not be given beside it.
-- Every parameter after `cluster` keeps the place and type it has in the form above, and the one
-- `cluster` displaced, `server`, comes last: a positional call written for that form, untyped
-- literals included, still resolves to it. `cluster => NULL` is that form, settings included.
create or replace function omni_kube.api(
  path text,
  cluster omni_kube.cluster_name,
  cacert text default null,
  clientcert omni_kube.client_certificate default null,
  token text default null,
  method omni_kube.http_method default 'GET',
  body jsonb default null,
  stream boolean default false,
  server text default null
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  result record;
begin
  if cluster is null then
    return omni_kube.api(path, coalesce(server, omni_kube._setting('omni_kube.server')),
                         coalesce(cacert, omni_kube._setting('omni_kube.cacert')),
                         coalesce(clientcert, omni_kube._setting_clientcert()),
                         coalesce(token, omni_kube._setting('omni_kube.token')),
                         method, body, stream);
  end if;
  select * into result from omni_kube._call('api', array[path], array[method], array[body], stream,
                                            server, cacert, clientcert, token,
                                            clusters => array[cluster::text]);
  if result.state = 'done' and result.status < 400 then
    return result.response;
  end if;
  perform omni_kube._raise_for(result.state, result.status, result.response, result.error,
                               format('%s %s on cluster %s', method, path, cluster), result.error_code);
  return null; -- not reached: _raise_for raises
end
$$;

-- The batch forms' work: `clusters` NULL, or one per path.
create or replace function omni_kube._api_batch(
  paths text[], clusters text[], server text, cacert text,
  clientcert omni_kube.client_certificate, token text, methods omni_kube.http_method[],
  bodies jsonb[], stream boolean
) returns table (response jsonb, status int2)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._check_paths(paths);
  if cardinality(paths) = 0 then
    return;
  end if;
  if methods is not null and cardinality(methods) <> cardinality(paths) then
    raise exception 'omni_kube: % methods for % paths', cardinality(methods), cardinality(paths)
      using errcode = '2202E', hint = 'Give one method per path, or none for GET everywhere.';
  end if;
  if bodies is not null and cardinality(bodies) <> cardinality(paths) then
    raise exception 'omni_kube: % bodies for % paths', cardinality(bodies), cardinality(paths)
      using errcode = '2202E', hint = 'Give one body (or NULL) per path, or none.';
  end if;
  return query
    select case when c.state = 'done' then c.response
                else omni_kube._transport_status(c.error, c.error_code) end,
           case when c.state = 'done' then c.status else 0::int2 end
      from omni_kube._call('api', paths,
                           coalesce(methods, array_fill('GET'::omni_kube.http_method, array[cardinality(paths)])),
                           coalesce(bodies, array_fill(null::jsonb, array[cardinality(paths)])),
                           stream, server, cacert, clientcert, token, clusters => clusters) c;
end
$$;

-- Batch: one row per path, in input order; the calls run in parallel.
create or replace function omni_kube.api(
  paths text[],
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token'),
  methods omni_kube.http_method[] default null,
  bodies jsonb[] default null,
  stream boolean default false
) returns table (response jsonb, status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube._api_batch(paths, null, server, cacert, clientcert, token, methods,
                                       bodies, stream)
  $$;

-- Batch across named clusters: one cluster per path (NULL: the worker's own cluster).
-- `clusters => NULL` is the form without clusters, settings included.
create or replace function omni_kube.api(
  paths text[],
  clusters omni_kube.cluster_names,
  cacert text default null,
  clientcert omni_kube.client_certificate default null,
  token text default null,
  methods omni_kube.http_method[] default null,
  bodies jsonb[] default null,
  stream boolean default false,
  server text default null
) returns table (response jsonb, status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube._api_batch(
      paths, clusters,
      case when clusters is null then coalesce(server, omni_kube._setting('omni_kube.server'))
           else server end,
      case when clusters is null then coalesce(cacert, omni_kube._setting('omni_kube.cacert'))
           else cacert end,
      case when clusters is null then coalesce(clientcert, omni_kube._setting_clientcert())
           else clientcert end,
      case when clusters is null then coalesce(token, omni_kube._setting('omni_kube.token'))
           else token end,
      methods, bodies, stream)
  $$;

-- Batch to one named cluster: the form above with that cluster for every path. (Parameters
-- placed as in the single form with a cluster.)
create or replace function omni_kube.api(
  paths text[],
  cluster omni_kube.cluster_name,
  cacert text default null,
  clientcert omni_kube.client_certificate default null,
  token text default null,
  methods omni_kube.http_method[] default null,
  bodies jsonb[] default null,
  stream boolean default false,
  server text default null
) returns table (response jsonb, status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube.api(
      paths,
      clusters => case when cluster is not null
                       then array_fill(cluster::text, array[coalesce(cardinality(paths), 0)])
                  end::omni_kube.cluster_names,
      cacert => cacert, clientcert => clientcert, token => token, methods => methods,
      bodies => bodies, stream => stream, server => server)
  $$;

grant execute on function omni_kube.api(text, text, text, omni_kube.client_certificate, text, omni_kube.http_method, jsonb, boolean) to omni_kube;
grant execute on function omni_kube.api(text[], text, text, omni_kube.client_certificate, text, omni_kube.http_method[], jsonb[], boolean) to omni_kube;
grant execute on function omni_kube.api(text, omni_kube.cluster_name, text, omni_kube.client_certificate, text, omni_kube.http_method, jsonb, boolean, text) to omni_kube;
grant execute on function omni_kube.api(text[], omni_kube.cluster_name, text, omni_kube.client_certificate, text, omni_kube.http_method[], jsonb[], boolean, text) to omni_kube;
grant execute on function omni_kube.api(text[], omni_kube.cluster_names, text, omni_kube.client_certificate, text, omni_kube.http_method[], jsonb[], boolean, text) to omni_kube;
grant execute on function omni_kube._api_batch(text[], text[], text, text, omni_kube.client_certificate, text, omni_kube.http_method[], jsonb[], boolean) to omni_kube;
