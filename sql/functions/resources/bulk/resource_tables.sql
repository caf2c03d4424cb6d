-- omni_kube.resource_tables(base_schema, ...): a resource table for every listable resource of
-- every group (or of the group versions given), named and placed as by resource_views(), and
-- base_schema.refresh_<base_schema>() to refresh them all at once.

create or replace function omni_kube.resource_tables(
  base_schema name,
  group_versions text[] default null,
  singular boolean default true,
  underscore_case boolean default true,
  transactional boolean default false,
  schema_template text default '%s/%s'
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
                                                  underscore_case, schema_template)
  loop
    tables := tables || omni_kube._create_resource_table(
      omni_kube._target_schema(wanted.schema), wanted.object_name, wanted.group_version,
      wanted.resource, wanted.kind, wanted.namespaced, null, null, coalesce(transactional, false))::text;
    paths := paths || omni_kube.resources_path(wanted.group_version, wanted.resource);
  end loop;
  -- One refresh for all: their collections are listed in parallel.
  execute format($fn$
    create or replace function %I.%I() returns table (resource_table regclass, type text, object jsonb)
      language sql volatile set search_path = pg_catalog, pg_temp
      as $body$ select * from omni_kube._refresh_resource_tables(%L::text[], %L::text[]) $body$
    $fn$, omni_kube._target_schema(base_schema), 'refresh_' || base_schema, tables, paths);
  execute format('select from %I.%I()', base_schema, 'refresh_' || base_schema);
  return query select t::regclass from unnest(tables) t;
end
$$;

grant execute on function omni_kube.resource_tables(name, text[], boolean, boolean, boolean, text) to omni_kube;
