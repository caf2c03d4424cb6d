-- What resource_views and resource_tables create: one row per listable resource (subresources
-- left out), discovered with one batch of parallel calls. group_versions NULL means the preferred
-- version of every group; 'v1' (or 'core/v1') is the core group. `cluster` NULL: the caller's
-- settings.
create or replace function omni_kube._resources_to_create(
  base_schema name, group_versions text[], singular boolean, underscore_case boolean,
  schema_template text, cluster text
) returns table (schema name, object_name name, group_version text, resource text, kind text,
                 namespaced boolean)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  chosen text[];
  group_names text[];
  unknown text[];
  duplicates text;
  responses jsonb[];
  statuses int2[];
  found jsonb;
  apis jsonb;
  -- Who answered, for messages.
  the_cluster constant text := coalesce('cluster "' || cluster || '"', 'the cluster');
begin
  if base_schema is null then
    raise exception 'omni_kube: base_schema must not be NULL' using errcode = '22004';
  end if;
  if schema_template is null
     or format(schema_template, base_schema, 'a') = format(schema_template, base_schema, 'b') then
    raise exception 'omni_kube: schema_template "%" must place the group name (its second %%s)', schema_template
      using errcode = '22023', hint = 'The default, %s/%s, gives schemas such as k8s/apps.';
  end if;
  -- Served group versions: the chosen ones, or every group's preferred one (as the views
  -- api_group_version and api_group tell, from one answer).
  apis := omni_kube.api('/apis', cluster => cluster);
  select array_agg(v.group_version order by v.group_version), array_agg(v.name order by v.group_version)
    into chosen, group_names
    from (select 'core'::text as name, 'v1'::text as group_version, true as preferred
          union all
          select g ->> 'name', v ->> 'groupVersion',
                 v ->> 'version' = g #>> '{preferredVersion,version}'
            from jsonb_array_elements(apis -> 'groups') g,
                 jsonb_array_elements(g -> 'versions') v) v
   where case when group_versions is null then v.preferred
              else v.group_version = any (group_versions)
                   or (v.name = 'core' and 'core/v1' = any (group_versions)) end;
  select array_agg(x) into unknown
    from unnest(group_versions) x
   where x <> all (coalesce(chosen, '{}')) and x <> 'core/v1';
  if unknown is not null then
    raise exception 'omni_kube: % does not serve %', the_cluster, array_to_string(unknown, ', ')
      using errcode = '22023',
        hint = case when cluster is null
                    then 'omni_kube.api_group_version lists the group versions it serves.'
                    else format('select omni_kube.api(''/apis'', cluster => %L) lists the groups it serves.', cluster) end;
  end if;

  if chosen is null then
    return;
  end if;
  select array_agg(a.response order by a.n), array_agg(a.status order by a.n) into responses, statuses
    from omni_kube.api(
           array(select omni_kube.group_path(v) from unnest(chosen) with ordinality u(v, n) order by n),
           cluster => cluster)
         with ordinality a(response, status, n);
  for i in 1 .. cardinality(chosen) loop
    -- An aggregated API that is down (say metrics.k8s.io) should not stop the others.
    if statuses[i] <> 200 then
      raise warning 'omni_kube: skipping %: discovery answered %', chosen[i]
                    || coalesce(' on cluster ' || cluster, ''),
                    coalesce(nullif(statuses[i], 0)::text, responses[i] ->> 'message');
    end if;
  end loop;
  select coalesce(jsonb_agg(jsonb_build_object(
           'schema', case when group_names[i] = 'core' then base_schema
                          else format(schema_template, base_schema, group_names[i]) end,
           'object_name', omni_kube._resource_object_name(r.name, r.singular_name, r.kind, singular,
                                                          underscore_case),
           'group_version', chosen[i], 'resource', r.name, 'kind', r.kind, 'namespaced', r.namespaced)),
           '[]')
    into found
    from generate_series(1, cardinality(chosen)) i, omni_kube._api_resource_rows(responses[i]) r
   where statuses[i] = 200 and r.name !~ '/' and 'list' = any (r.verbs);
  select string_agg(format('%s.%s (%s)', d.schema, d.object_name, d.resources), '; ') into duplicates
    from (select t.schema, t.object_name, string_agg(t.group_version || ' ' || t.resource, ', ') as resources
            from jsonb_to_recordset(found) t(schema name, object_name name, group_version text, resource text)
           group by 1, 2 having count(*) > 1) d;
  if duplicates is not null then
    raise exception 'omni_kube: several resources would share a name: %', duplicates
      using errcode = '42710', hint = 'Choose other naming options (singular => false names them by their plural).';
  end if;
  return query
    select * from jsonb_to_recordset(found) t(schema name, object_name name, group_version text,
                                              resource text, kind text, namespaced boolean)
     order by 1, 2;
end
$$;
