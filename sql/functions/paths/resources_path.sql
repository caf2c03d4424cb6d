-- omni_kube.resources_path(group_version, resource, namespace): the collection path of a resource,
-- in one namespace or (namespace NULL) across all of them.

create or replace function omni_kube.resources_path(group_version text, resource text, namespace text default null)
  returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._collection_path(group_version, resource, namespace) $$;

grant execute on function omni_kube.resources_path(text, text, text) to omni_kube;
