-- Discovery views: the API groups and versions the cluster serves, read live on each query with
-- the caller's settings (omni_kube.server, omni_kube.token, ...). The core group is named 'core'.

create view omni_kube.api_group as
  select 'core'::text as name, 'v1'::text as preferred_version
  union all
  select g ->> 'name', g #>> '{preferredVersion,version}'
    from jsonb_array_elements(omni_kube.api('/apis') -> 'groups') g;

create view omni_kube.api_group_version as
  select 'core'::text as name, 'v1'::text as version, 'v1'::text as group_version
  union all
  select g ->> 'name', v ->> 'version', v ->> 'groupVersion'
    from jsonb_array_elements(omni_kube.api('/apis') -> 'groups') g,
         jsonb_array_elements(g -> 'versions') v;

-- /openapi/v3 lists one document per group version: api/v1 and apis/GROUP/VERSION (plus a few
-- non-group entries such as version and logs, left out here). The API server sends this index as
-- text/plain, so api() returns it as a JSON string, parsed here.
create view omni_kube.api_group_openapi_v3_url as
  select case when p.key = 'api/v1' then 'core' else split_part(p.key, '/', 2) end as name,
         case when p.key = 'api/v1' then 'v1'
              else split_part(p.key, '/', 2) || '/' || split_part(p.key, '/', 3) end as group_version,
         p.value ->> 'serverRelativeURL' as url
    from (select omni_kube.api('/openapi/v3') as answer) a,
         jsonb_each(case when jsonb_typeof(a.answer) = 'string' then (a.answer #>> '{}')::jsonb
                         else a.answer end -> 'paths') p
   where p.key = 'api/v1' or p.key ~ '^apis/[^/]+/[^/]+$';

grant select on omni_kube.api_group, omni_kube.api_group_version,
  omni_kube.api_group_openapi_v3_url to omni_kube;
