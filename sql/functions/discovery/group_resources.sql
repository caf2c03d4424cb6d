-- omni_kube.group_resources(group_version): the resources a group version serves (discovery),
-- subresources such as pods/log included.

create or replace function omni_kube.group_resources(group_version text)
  returns table (name text, singular_name text, namespaced boolean, kind text, verbs text[],
                 storage_version_hash text)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  list jsonb;
begin
  begin
    list := omni_kube.api(omni_kube.group_path(group_version));
  exception when sqlstate 'OK404' then
    raise exception 'omni_kube: the cluster does not serve group version "%"', group_version
      using errcode = 'OK404', hint = 'omni_kube.api_group_version lists the ones it does.';
  end;
  return query select * from omni_kube._api_resource_rows(list);
end
$$;

grant execute on function omni_kube.group_resources(text) to omni_kube;
