-- omni_kube.group_path(group_version): where a group version is served, /api/v1 for the core
-- group and /apis/GROUP/VERSION for the others.

create or replace function omni_kube.group_path(group_version text) returns text
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._check_group_version(group_version);
  return case when group_version ~ '/' then '/apis/' else '/api/' end || group_version;
end
$$;

grant execute on function omni_kube.group_path(text) to omni_kube;
