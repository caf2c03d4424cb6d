-- omni_kube.group_resources(group_version): the resources a group version serves (discovery),
-- subresources such as pods/log included.

-- `cluster` NULL: the caller's settings.
create or replace function omni_kube._group_resources(group_version text, cluster text)
  returns table (name text, singular_name text, namespaced boolean, kind text, verbs text[],
                 storage_version_hash text)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  list jsonb;
begin
  begin
    list := omni_kube.api(omni_kube.group_path(group_version), cluster => cluster);
  exception when sqlstate 'OK404' then
    if cluster is null then
      raise exception 'omni_kube: the cluster does not serve group version "%"', group_version
        using errcode = 'OK404', hint = 'omni_kube.api_group_version lists the ones it does.';
    end if;
    raise exception 'omni_kube: cluster "%" does not serve group version "%"', cluster, group_version
      using errcode = 'OK404',
        hint = format('select omni_kube.api(''/apis'', cluster => %L) lists the groups it serves.', cluster);
  end;
  return query select * from omni_kube._api_resource_rows(list);
end
$$;

create or replace function omni_kube.group_resources(group_version text)
  returns table (name text, singular_name text, namespaced boolean, kind text, verbs text[],
                 storage_version_hash text)
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$ select * from omni_kube._group_resources(group_version, null) $$;

-- Of a named cluster (cluster => 'name'; NULL: as without one).
create or replace function omni_kube.group_resources(group_version text,
                                                     cluster omni_kube.cluster_name)
  returns table (name text, singular_name text, namespaced boolean, kind text, verbs text[],
                 storage_version_hash text)
  language sql volatile set search_path = pg_catalog, pg_temp
  as $$ select * from omni_kube._group_resources(group_version, cluster) $$;

grant execute on function omni_kube.group_resources(text) to omni_kube;
grant execute on function omni_kube.group_resources(text, omni_kube.cluster_name) to omni_kube;
