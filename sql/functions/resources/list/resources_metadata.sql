-- omni_kube.resources_metadata(group_version, resource): the list metadata of a collection (its
-- resourceVersion, to start a watch from), without transferring the collection.

create or replace function omni_kube.resources_metadata(group_version text, resource text)
  returns jsonb
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    -- limit=1 keeps the answer small; continue and remainingItemCount belong to that page only.
    select (omni_kube.api(omni_kube._append_query(omni_kube.resources_path(group_version, resource),
                                                  'limit=1')) -> 'metadata') - 'continue' - 'remainingItemCount'
  $$;

-- Of a named cluster (cluster => 'name'; NULL: as without one).
create or replace function omni_kube.resources_metadata(group_version text, resource text,
                                                        cluster omni_kube.cluster_name)
  returns jsonb
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$
    select (omni_kube.api(omni_kube._append_query(
              omni_kube.resources_path(group_version, resource), 'limit=1'), cluster => cluster)
              -> 'metadata')
           - 'continue' - 'remainingItemCount'
  $$;

grant execute on function omni_kube.resources_metadata(text, text) to omni_kube;
grant execute on function omni_kube.resources_metadata(text, text, omni_kube.cluster_name) to omni_kube;
