-- Every version of every API group the cluster serves, read live with the caller's settings.
create or replace view omni_kube.api_group_version as
  select 'core'::text as name, 'v1'::text as version, 'v1'::text as group_version
  union all
  select g ->> 'name', v ->> 'version', v ->> 'groupVersion'
    from jsonb_array_elements(omni_kube.api('/apis') -> 'groups') g,
         jsonb_array_elements(g -> 'versions') v;
grant select on omni_kube.api_group_version to omni_kube;
