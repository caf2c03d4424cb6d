-- omni_kube.resources(group_version, resource, ...): every object of a resource, as the API server
-- lists them, page after page (following `continue`) so large collections come back whole.

create or replace function omni_kube.resources(
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  namespace text default null
) returns setof jsonb
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select l.object
      from omni_kube._list_collections(array[omni_kube._list_path(
             group_version, resource, label_selector, field_selector, namespace)]) l
  $$;

-- The objects of a named cluster (cluster => 'name'; NULL: as without one).
create or replace function omni_kube.resources(
  group_version text,
  resource text,
  cluster omni_kube.cluster_name,
  -- (label_selector last: see watch.sql.)
  field_selector text default null,
  namespace text default null,
  label_selector text default null
) returns setof jsonb
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select l.object
      from omni_kube._list_collections(array[omni_kube._list_path(
             group_version, resource, label_selector, field_selector, namespace)],
             clusters => case when cluster is not null then array[cluster::text] end) l
  $$;

grant execute on function omni_kube.resources(text, text, text, text, text) to omni_kube;
grant execute on function omni_kube.resources(text, text, omni_kube.cluster_name, text, text, text) to omni_kube;
