-- The API groups the cluster serves, with their preferred versions, read live on each query with
-- the caller's settings (omni_kube.server, omni_kube.token, ...). The core group is named 'core'.
create or replace view omni_kube.api_group as
  select 'core'::text as name, 'v1'::text as preferred_version
  union all
  select g ->> 'name', g #>> '{preferredVersion,version}'
    from jsonb_array_elements(omni_kube.api('/apis') -> 'groups') g;

grant select on omni_kube.api_group to omni_kube;
