-- The collection path of a resource: /api/v1/... for the core group, /apis/GROUP/VERSION/... else.
create or replace function omni_kube._collection_path(group_version text, resource text, namespace text)
  returns text
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._check_group_version(group_version);
  if resource is null or resource !~ '^[a-z0-9][a-z0-9.-]*$' then
    raise exception 'omni_kube: "%" is not a resource name', resource
      using errcode = '22023', hint = 'Use the plural resource name, e.g. pods or deployments.';
  end if;
  if namespace is not null and namespace !~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$' then
    raise exception 'omni_kube: "%" is not a namespace name', namespace using errcode = '22023';
  end if;
  return case when group_version ~ '/' then '/apis/' else '/api/' end || group_version
         || coalesce('/namespaces/' || namespace, '') || '/' || resource;
end
$$;
