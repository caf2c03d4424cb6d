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
                                           r.group_version, r.resource, r.kind, r.namespaced, null,
                                           null, null)
      from omni_kube._resources_to_create(base_schema, group_versions, singular, underscore_case,
                                          schema_template, null) r
  $$;

-- The views of a named cluster (cluster => 'name'), as resource_view(..., cluster => 'name') makes
-- them. `cluster` takes the place of the other form's group_versions, and a call of that form with
-- an untyped NULL or array literal there resolves to this one: NULL is as no cluster, and an array
-- literal (resource_views('k8s', '{apps/v1}')) is taken as the group versions it is.
create or replace function omni_kube.resource_views(
  base_schema name,
  cluster omni_kube.cluster_name,
  -- (group_versions last: see watch.sql.)
  singular boolean default true,
  underscore_case boolean default true,
  schema_template text default '%s/%s',
  group_versions text[] default null
) returns setof regclass
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select omni_kube._create_resource_view(omni_kube._target_schema(r.schema), r.object_name,
                                           r.group_version, r.resource, r.kind, r.namespaced, null,
                                           null, c.named)
      from (select case when omni_kube._array_in_cluster_place(cluster) is null
                        then cluster::text end) c(named),
           omni_kube._resources_to_create(
             base_schema, coalesce(omni_kube._array_in_cluster_place(cluster), group_versions),
             singular, underscore_case, schema_template, c.named) r
  $$;

grant execute on function omni_kube.resource_views(name, text[], boolean, boolean, text) to omni_kube;
grant execute on function omni_kube.resource_views(name, omni_kube.cluster_name, boolean, boolean, text, text[]) to omni_kube;
