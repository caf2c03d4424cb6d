-- omni_kube.version(): the release of the shim installed in this database, as the migrator
-- recorded it.
create or replace function omni_kube.version() returns text
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$ select version from omni_kube.release $$;
grant execute on function omni_kube.version() to omni_kube;
