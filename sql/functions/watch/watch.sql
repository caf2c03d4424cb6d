-- omni_kube.watch(): bounded watches through the same queue as api(). The worker lists first when
-- no resource_version is given, collects events for `timeout` seconds and ends with a BOOKMARK
-- carrying the version to resume from.

-- Runs watches and returns (events, status) per input, in order. Shared by every form.
create or replace function omni_kube._watch(
  group_versions text[], resources text[], resource_versions text[], timeout int,
  namespaces text[], label_selectors text[], field_selectors text[],
  server text, cacert text, clientcert omni_kube.client_certificate, token text,
  -- One named cluster per watch (NULL: the default cluster), or NULL: none named.
  clusters text[]
) returns table (events jsonb[], status int2, state text, error text, error_code text)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  n int := cardinality(group_versions);
  paths text[];
  bodies jsonb[];
begin
  if group_versions is null or resources is null then
    raise exception 'omni_kube: group versions and resources must not be NULL' using errcode = '22004';
  end if;
  if timeout is null or timeout < 1
     or timeout > (omni_kube._protocol() ->> 'max_duration_seconds')::int then
    raise exception 'omni_kube: watch timeout must be between 1 and 3600 seconds, got %', timeout
      using errcode = '22023', hint = 'To watch longer, resume from the final BOOKMARK (see the README).';
  end if;
  if cardinality(resources) <> n
     or cardinality(coalesce(resource_versions, array_fill(null::text, array[n]))) <> n
     or cardinality(coalesce(namespaces, array_fill(null::text, array[n]))) <> n
     or cardinality(coalesce(label_selectors, array_fill(null::text, array[n]))) <> n
     or cardinality(coalesce(field_selectors, array_fill(null::text, array[n]))) <> n
     or cardinality(coalesce(clusters, array_fill(null::text, array[n]))) <> n then
    raise exception 'omni_kube: watch arrays differ in length (% group versions)', n
      using errcode = '2202E', hint = 'Give every array one element per watch, or leave it NULL.';
  end if;
  if n = 0 then
    return;
  end if;
  -- path_with (0007) is resolved when this runs, not when it is created.
  select array_agg(omni_kube.path_with(
                     omni_kube._collection_path(group_versions[i], resources[i], namespaces[i]),
                     label_selectors[i], field_selectors[i]) order by i),
         array_agg(jsonb_strip_nulls(jsonb_build_object(
                     'resourceVersion', resource_versions[i], 'timeoutSeconds', timeout)) order by i)
    into paths, bodies
    from generate_series(1, n) i;
  return query
    select case when c.state = 'done' and jsonb_typeof(c.response) = 'array'
                  then array(select jsonb_array_elements(c.response))
                when c.state = 'done' then array_remove(array[c.response], null)
                else array[omni_kube._transport_status(c.error, c.error_code)] end,
           case when c.state = 'done' then c.status else 0::int2 end,
           c.state, c.error, c.error_code
      from omni_kube._call('watch', paths,
                           array_fill('GET'::omni_kube.http_method, array[n]), bodies, false,
                           server, cacert, clientcert, token, timeout * 1000, clusters) c;
end
$$;

-- _watch for the batch form with a cluster. In the forms with a cluster the parameter a cluster
-- displaces goes last: every other keeps the position and type it has in the form without, so
-- that a call of that form resolves to one of them only where it passed an untyped NULL or literal
-- in the cluster's place (watch(group_versions, resources, NULL)). A NULL cluster is then as none
-- (server and credentials default to the settings), as in the form without.
create or replace function omni_kube._watch_with_cluster(
  group_versions text[], resources text[], resource_versions text[], timeout int,
  namespaces text[], label_selectors text[], field_selectors text[],
  server text, cacert text, clientcert omni_kube.client_certificate, token text, clusters text[]
) returns table (events jsonb[], status int2, state text, error text, error_code text)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select w.*
      from omni_kube._watch(
             group_versions, resources, resource_versions, timeout, namespaces, label_selectors,
             field_selectors,
             case when clusters is null then coalesce(server, omni_kube._setting('omni_kube.server')) else server end,
             case when clusters is null then coalesce(cacert, omni_kube._setting('omni_kube.cacert')) else cacert end,
             case when clusters is null then coalesce(clientcert, omni_kube._setting_clientcert()) else clientcert end,
             case when clusters is null then coalesce(token, omni_kube._setting('omni_kube.token')) else token end,
             clusters) w
  $$;

-- The single forms' work: one watch, raising for a status of 400 or more except 410. `cluster`
-- NULL: none.
create or replace function omni_kube._watch_one(
  group_version text, resource text, resource_version text, timeout int, namespace text,
  label_selector text, field_selector text, server text, cacert text,
  clientcert omni_kube.client_certificate, token text, cluster text
) returns table (events jsonb[], status int2)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  result record;
begin
  select * into result from omni_kube._watch(
    array[group_version], array[resource], array[resource_version], timeout, array[namespace],
    array[label_selector], array[field_selector], server, cacert, clientcert, token,
    case when cluster is not null then array[cluster] end);
  if result.state <> 'done' or (result.status >= 400 and result.status <> 410) then
    perform omni_kube._raise_for(result.state, result.status, result.events[1], result.error,
                                 format('watch of %s %s', group_version, resource)
                                   || coalesce(' on cluster ' || cluster, ''),
                                 result.error_code);
  end if;
  events := result.events;
  status := result.status;
  return next;
end
$$;

-- One watch. A status of 400 or more raises, except 410 (resourceVersion expired: relist).
create or replace function omni_kube.watch(
  group_version text,
  resource text,
  resource_version text default null,
  timeout int default 1,
  namespace text default null,
  label_selector text default null,
  field_selector text default null,
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token')
) returns table (events jsonb[], status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube._watch_one(group_version, resource, resource_version, timeout,
                                       namespace, label_selector, field_selector, server, cacert,
                                       clientcert, token, null)
  $$;

-- Several watches in parallel; one row per input, in input order; statuses are returned, not raised.
create or replace function omni_kube.watch(
  group_versions text[],
  resources text[],
  resource_versions text[] default null,
  timeout int default 1,
  namespaces text[] default null,
  label_selectors text[] default null,
  field_selectors text[] default null,
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token')
) returns table (events jsonb[], status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select w.events, w.status
      from omni_kube._watch(group_versions, resources, resource_versions, timeout, namespaces,
                            label_selectors, field_selectors, server, cacert, clientcert, token,
                            null) w
  $$;

-- One watch of a named cluster (cluster => 'name'): its server and credentials are the worker's
-- (its kubeconfig's context of that name), and may not be given beside it. `cluster => NULL` is
-- the form without a cluster, settings included.
create or replace function omni_kube.watch(
  group_version text,
  resource text,
  cluster omni_kube.cluster_name,
  timeout int default 1,
  namespace text default null,
  label_selector text default null,
  field_selector text default null,
  server text default null,
  cacert text default null,
  clientcert omni_kube.client_certificate default null,
  token text default null,
  resource_version text default null
) returns table (events jsonb[], status int2)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if cluster is null then
    return query select * from omni_kube.watch(
      group_version, resource, resource_version, timeout, namespace, label_selector, field_selector,
      coalesce(server, omni_kube._setting('omni_kube.server')),
      coalesce(cacert, omni_kube._setting('omni_kube.cacert')),
      coalesce(clientcert, omni_kube._setting_clientcert()),
      coalesce(token, omni_kube._setting('omni_kube.token')));
    return;
  end if;
  return query select * from omni_kube._watch_one(group_version, resource, resource_version,
                                                  timeout, namespace, label_selector,
                                                  field_selector, server, cacert, clientcert,
                                                  token, cluster);
end
$$;

-- Several watches of one named cluster. `cluster` takes the place of the other form's
-- resource_versions: an array literal there (watch(gvs, resources, '{12,34}'), which PostgreSQL
-- resolves to this form) is taken as the resource versions it is.
create or replace function omni_kube.watch(
  group_versions text[],
  resources text[],
  cluster omni_kube.cluster_name,
  timeout int default 1,
  namespaces text[] default null,
  label_selectors text[] default null,
  field_selectors text[] default null,
  server text default null,
  cacert text default null,
  clientcert omni_kube.client_certificate default null,
  token text default null,
  resource_versions text[] default null
) returns table (events jsonb[], status int2)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    select w.events, w.status
      from omni_kube._watch_with_cluster(
             group_versions, resources,
             coalesce(omni_kube._array_in_cluster_place(cluster), resource_versions), timeout,
             namespaces, label_selectors, field_selectors, server, cacert, clientcert, token,
             case when omni_kube._array_in_cluster_place(cluster) is null and cluster is not null
                  then array_fill(cluster::text, array[coalesce(cardinality(group_versions), 0)]) end) w
  $$;

grant execute on function omni_kube.watch(text, text, text, int, text, text, text, text, text, omni_kube.client_certificate, text) to omni_kube;
grant execute on function omni_kube.watch(text[], text[], text[], int, text[], text[], text[], text, text, omni_kube.client_certificate, text) to omni_kube;
grant execute on function omni_kube.watch(text, text, omni_kube.cluster_name, int, text, text, text, text, text, omni_kube.client_certificate, text, text) to omni_kube;
grant execute on function omni_kube.watch(text[], text[], omni_kube.cluster_name, int, text[], text[], text[], text, text, omni_kube.client_certificate, text, text[]) to omni_kube;
