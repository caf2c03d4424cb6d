-- omni_kube.path_with(path, ...): a path with the common query parameters added, each value
-- percent-encoded. NULL parameters are left out.

create or replace function omni_kube.path_with(
  path text,
  label_selector text default null,
  field_selector text default null,
  timeout_seconds int default null,
  dry_run boolean default null
) returns text
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  if path is null or path !~ '^/' then
    raise exception 'omni_kube: path_with needs a path starting with /, got %', coalesce('"' || path || '"', 'NULL')
      using errcode = '22023', hint = 'Build one with omni_kube.resources_path() or omni_kube.group_path().';
  end if;
  if timeout_seconds < 0 then
    raise exception 'omni_kube: timeout_seconds must not be negative, got %', timeout_seconds
      using errcode = '22023';
  end if;
  return omni_kube._append_query(path,
    case when dry_run then 'dryRun=All' end,
    'labelSelector=' || omni_kube._url_encode(label_selector),
    'fieldSelector=' || omni_kube._url_encode(field_selector),
    'timeoutSeconds=' || timeout_seconds);
end
$$;

grant execute on function omni_kube.path_with(text, text, text, int, boolean) to omni_kube;
