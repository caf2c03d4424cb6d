-- omni_kube.watch_path(path, resource_version): a collection path turned into a watch, for
-- api(..., stream => true). omni_kube.watch() builds its own.

create or replace function omni_kube.watch_path(path text, resource_version text default null) returns text
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  if path is null or path !~ '^/' then
    raise exception 'omni_kube: watch_path needs a path starting with /, got %', coalesce('"' || path || '"', 'NULL')
      using errcode = '22023', hint = 'Build one with omni_kube.resources_path().';
  end if;
  return omni_kube._append_query(path, 'watch=1',
                                 'resourceVersion=' || omni_kube._url_encode(resource_version));
end
$$;

grant execute on function omni_kube.watch_path(text, text) to omni_kube;
