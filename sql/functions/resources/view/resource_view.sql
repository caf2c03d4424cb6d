-- omni_kube.resource_view(view_name, group_version, resource, ...): a view of the objects of one
-- resource, read live from the cluster on every query. INSERT creates objects (generateName works;
-- RETURNING shows what the server created), UPDATE replaces them, DELETE deletes them.

-- A view of a named cluster (cluster => 'name'): its queries and writes go there, as the role that
-- makes them (which must be allowed to use the cluster). NULL: none, as the form below.
create or replace function omni_kube.resource_view(
  view_name name,
  group_version text,
  resource text,
  cluster omni_kube.cluster_name,
  -- (label_selector last: see watch.sql.)
  field_selector text default null,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema(),
  label_selector text default null
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  description record := omni_kube._describe_resource(group_version, resource, cluster);
begin
  return omni_kube._create_resource_view(omni_kube._target_schema(schema), view_name, group_version,
                                         resource, description.kind, description.namespaced,
                                         label_selector, field_selector, cluster);
end
$$;

create or replace function omni_kube.resource_view(
  view_name name,
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema()
) returns regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube.resource_view(view_name, group_version, resource, cluster => null,
                                   field_selector => field_selector, schema => schema,
                                   label_selector => label_selector)
  $$;

grant execute on function omni_kube.resource_view(name, text, text, text, text, name) to omni_kube;
grant execute on function omni_kube.resource_view(name, text, text, omni_kube.cluster_name, text, name, text) to omni_kube;
