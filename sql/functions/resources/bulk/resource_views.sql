-- omni_kube.resource_views(base_schema, ...): a resource view for every listable resource of every
-- group (or of the group versions given). The core group's views go in base_schema, every other
-- group's in a schema named by schema_template (base schema, group name).

create or replace function omni_kube.resource_views(
  base_schema name,
  group_versions text[] default null,
  singular boolean default true,
  underscore_case boolean default true,
  schema_template text default '%s/%s'
) returns setof regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube._create_resource_view(omni_kube._target_schema(r.schema), r.object_name,
                                           r.group_version, r.resource, r.kind, r.namespaced, null, null)
      from omni_kube._resources_to_create(base_schema, group_versions, singular, underscore_case,
                                          schema_template) r
  $$;

grant execute on function omni_kube.resource_views(name, text[], boolean, boolean, text) to omni_kube;
