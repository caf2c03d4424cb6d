-- omni_kube.resource_tables(base_schema, ...): a resource table for every listable resource of
-- every group (or of the group versions given), named and placed as by resource_views(), and
-- base_schema.refresh_<base_schema>() to refresh them all at once.

-- Both forms' work; `cluster` NULL: none.
create or replace function omni_kube._resource_tables(
  base_schema name, group_versions text[], singular boolean, underscore_case boolean,
  transactional boolean, schema_template text, cluster text
) returns setof regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  wanted record;
  tables text[] := '{}';
  paths text[] := '{}';
begin
  for wanted in
    select * from omni_kube._resources_to_create(base_schema, group_versions, singular,
                                                  underscore_case, schema_template, cluster)
  loop
    tables := tables || omni_kube._create_resource_table(
      omni_kube._target_schema(wanted.schema), wanted.object_name, wanted.group_version,
      wanted.resource, wanted.kind, wanted.namespaced, null, null, coalesce(transactional, false),
      cluster)::text;
    paths := paths || omni_kube.resources_path(wanted.group_version, wanted.resource);
  end loop;
  -- One refresh for all: their collections are listed in parallel.
  execute format($fn$
    create or replace function %I.%I() returns table (resource_table regclass, type text, object jsonb)
      language sql volatile set search_path = pg_catalog, pg_temp
      as $body$ select * from omni_kube._refresh_resource_tables(%L::text[], %L::text[]%s) $body$
    $fn$, omni_kube._target_schema(base_schema), 'refresh_' || base_schema, tables, paths,
    case when cluster is not null
         then format(', %L::text[]', array_fill(cluster, array[cardinality(tables)])) else '' end);
  execute format('select from %I.%I()', base_schema, 'refresh_' || base_schema);
  return query select t::regclass from unnest(tables) t;
end
$$;

create or replace function omni_kube.resource_tables(
  base_schema name,
  group_versions text[] default null,
  singular boolean default true,
  underscore_case boolean default true,
  transactional boolean default false,
  schema_template text default '%s/%s'
) returns setof regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube._resource_tables(base_schema, group_versions, singular, underscore_case,
                                             transactional, schema_template, null)
  $$;

-- The tables of a named cluster (cluster => 'name'), as resource_table(..., cluster => 'name')
-- makes them, and one refresh function for all. As for resource_views: an untyped NULL or array
-- literal in the place of group_versions resolves to this form, and is taken as what it is.
create or replace function omni_kube.resource_tables(
  base_schema name,
  cluster omni_kube.cluster_name,
  -- (group_versions last: see watch.sql.)
  singular boolean default true,
  underscore_case boolean default true,
  transactional boolean default false,
  schema_template text default '%s/%s',
  group_versions text[] default null
) returns setof regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select * from omni_kube._resource_tables(
      base_schema, coalesce(omni_kube._array_in_cluster_place(cluster), group_versions), singular,
      underscore_case, transactional, schema_template,
      case when omni_kube._array_in_cluster_place(cluster) is null then cluster::text end)
  $$;

grant execute on function omni_kube.resource_tables(name, text[], boolean, boolean, boolean, text) to omni_kube;
grant execute on function omni_kube.resource_tables(name, omni_kube.cluster_name, boolean, boolean, boolean, text, text[]) to omni_kube;
