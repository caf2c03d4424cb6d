-- Appends query parameters (already encoded) to a path that may have a query of its own.
create or replace function omni_kube._append_query(path text, variadic parameters text[]) returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select path || coalesce(case when path ~ '\?' then '&' else '?' end
                            || nullif(array_to_string(parameters, '&'), ''), '')
  $$;
