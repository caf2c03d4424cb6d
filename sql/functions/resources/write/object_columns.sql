-- Copies an object the API server returned into the row's columns.
create or replace function omni_kube._object_columns(object jsonb, out uid text, out name text, out namespace text)
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select object #>> '{metadata,uid}', object #>> '{metadata,name}', object #>> '{metadata,namespace}'
  $$;
