-- /openapi/v3 lists one document per group version: api/v1 and apis/GROUP/VERSION (plus a few
-- non-group entries such as version and logs, left out here). The API server sends this index as
-- text/plain, so api() returns it as a JSON string, parsed here.
create or replace view omni_kube.api_group_openapi_v3_url as
  select case when p.key = 'api/v1' then 'core' else split_part(p.key, '/', 2) end as name,
         case when p.key = 'api/v1' then 'v1'
              else split_part(p.key, '/', 2) || '/' || split_part(p.key, '/', 3) end as group_version,
         p.value ->> 'serverRelativeURL' as url
    from (select omni_kube.api('/openapi/v3') as answer) a,
         jsonb_each(case when jsonb_typeof(a.answer) = 'string' then (a.answer #>> '{}')::jsonb
                         else a.answer end -> 'paths') p
   where p.key = 'api/v1' or p.key ~ '^apis/[^/]+/[^/]+$';
grant select on omni_kube.api_group_openapi_v3_url to omni_kube;
