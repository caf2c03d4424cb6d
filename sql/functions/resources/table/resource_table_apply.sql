-- Deferred to commit on transactional tables: sends the transaction's changes, in parallel, and
-- writes what the server answered into the rows. A failure aborts the commit; the changes that
-- were already applied stay applied (Kubernetes has no transactions), and the error lists them.
-- Argument: the named cluster of a table that has one.
create or replace function omni_kube._resource_table_apply() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  names text[];
  namespaces text[];
  methods omni_kube.http_method[];
  paths text[];
  bodies jsonb[];
  answer record;
  failures text[] := '{}';
  applied int := 0;
  local_only text := current_setting('omni_kube.local_only', true);
  cluster text := case when tg_nargs > 0 then tg_argv[0] end;
begin
  select array_agg(p.name), array_agg(p.namespace), array_agg(p.method), array_agg(p.path),
         array_agg(p.body)
    into names, namespaces, methods, paths, bodies
    from omni_kube._pending_take(tg_relid) p;
  if paths is null then
    return null; -- another row's trigger applied them already
  end if;
  perform set_config('omni_kube.local_only', 'on', true);
  for answer in
    select a.response, a.status, a.n
      from omni_kube.api(paths, cluster => cluster, methods => methods, bodies => bodies)
           with ordinality a(response, status, n)
  loop
    if answer.status between 200 and 299 or (methods[answer.n] = 'DELETE' and answer.status = 404) then
      applied := applied + 1;
      if methods[answer.n] = 'POST' then
        execute format('update %s set uid = $1, resource = $2, new = false, committed = true
                         where name = $3 and namespace is not distinct from $4', tg_relid::regclass)
          using answer.response #>> '{metadata,uid}', answer.response, names[answer.n], namespaces[answer.n];
      elsif methods[answer.n] = 'PUT' then
        execute format('update %s set resource = $1, committed = true
                         where name = $2 and namespace is not distinct from $3', tg_relid::regclass)
          using answer.response, names[answer.n], namespaces[answer.n];
      end if;
    else
      failures := failures || format('%s %s: %s %s', methods[answer.n], paths[answer.n],
                                     nullif(answer.status, 0), coalesce(answer.response ->> 'message', ''));
    end if;
  end loop;
  perform set_config('omni_kube.local_only', coalesce(local_only, ''), true);
  if cardinality(failures) > 0 then
    raise exception 'omni_kube: % of % changes to % failed at commit', cardinality(failures),
                    cardinality(paths),
                    tg_relid::regclass::text || coalesce(' on cluster ' || cluster, '')
      using errcode = 'OKC01', detail = array_to_string(failures, E'\n'),
        hint = format('The transaction is rolled back, but %s change(s) had already reached the cluster; refresh the table to see them.', applied);
  end if;
  return null;
end
$$;
