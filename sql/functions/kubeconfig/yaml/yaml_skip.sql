-- Whitespace and comments at the start of flow text.
create or replace function omni_kube._yaml_skip(src text) returns text
  language sql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$ select regexp_replace(src, '^(\s+(#[^\n]*)?)+', '') $$;
revoke all on function omni_kube._yaml_skip(text) from public;
grant execute on function omni_kube._yaml_skip(text) to omni_kube;
