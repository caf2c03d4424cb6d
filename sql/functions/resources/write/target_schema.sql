-- Where views and tables go: the schema given, created when missing.
create or replace function omni_kube._target_schema(schema name) returns name
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  if schema is null then
    raise exception 'omni_kube: no schema to create in'
      using errcode = '3F000',
        hint = 'Name one with schema => ..., or put an existing schema first in search_path.';
  end if;
  -- CREATE SCHEMA IF NOT EXISTS would demand CREATE on the database even when the schema exists.
  if not exists (select from pg_namespace where nspname = schema) then
    execute format('create schema %I', schema);
  end if;
  return schema;
end
$$;
