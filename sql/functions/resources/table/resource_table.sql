-- omni_kube.resource_table(table_name, group_version, resource, ...): a local table of the
-- objects of one resource, filled from the cluster and brought up to date by refresh_<table>(),
-- which returns what changed (ADDED, MODIFIED, DELETED). Writes to the table go through to the
-- cluster; with transactional => true they are dry-run at once and applied at commit, so nothing
-- reaches the cluster on rollback.

-- A table of a named cluster (cluster => 'name'): its refresh and its writes go there, as the role
-- that makes them (which must be allowed to use the cluster). NULL: none, as the form below.
create or replace function omni_kube.resource_table(
  table_name name,
  group_version text,
  resource text,
  cluster omni_kube.cluster_name,
  -- (label_selector last: see watch.sql.)
  field_selector text default null,
  transactional boolean default false,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema(),
  label_selector text default null
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  description record := omni_kube._describe_resource(group_version, resource, cluster);
  created regclass := omni_kube._create_resource_table(
    omni_kube._target_schema(schema), table_name, group_version, resource, description.kind,
    description.namespaced, label_selector, field_selector, coalesce(transactional, false),
    cluster);
begin
  -- Filled by its own refresh function, which returns the objects as ADDED.
  execute format('select from %I.%I()', schema, 'refresh_' || table_name);
  return created;
end
$$;

create or replace function omni_kube.resource_table(
  table_name name,
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  transactional boolean default false,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema()
) returns regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube.resource_table(table_name, group_version, resource, cluster => null,
                                    field_selector => field_selector,
                                    transactional => transactional, schema => schema,
                                    label_selector => label_selector)
  $$;

grant execute on function omni_kube.resource_table(name, text, text, text, text, boolean, name) to omni_kube;
grant execute on function omni_kube.resource_table(name, text, text, omni_kube.cluster_name, text, boolean, name, text) to omni_kube;
