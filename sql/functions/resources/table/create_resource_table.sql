-- Creates the table (empty), its triggers and its functions; discovery already done. A table of a
-- named cluster names it in its triggers' arguments and its refresh function; `cluster` NULL:
-- none, and the table is refreshed and written with the session's settings.
create or replace function omni_kube._create_resource_table(
  schema name, table_name name, group_version text, resource text, kind text, namespaced boolean,
  label_selector text, field_selector text, transactional boolean, cluster text
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  qualified text := format('%I.%I', schema, table_name);
  path text := omni_kube._list_path(group_version, resource, label_selector, field_selector, null);
begin
  execute format('create table %s (
                    uid text unique,
                    name text not null,
                    namespace text,
                    resource jsonb not null%s)',
                 qualified,
                 case when transactional
                      then ', new boolean not null default false, committed boolean not null default true'
                      else '' end);
  -- One row per object. (Tables made by 0.2.0 and older have UNIQUE NULLS NOT DISTINCT (name,
  -- namespace) instead, which PostgreSQL 14 lacks; both keep the same rows apart, since a
  -- cluster-scoped object's namespace is NULL and no namespace is named ''.)
  execute format('create unique index on %s (name, coalesce(namespace, %L))', qualified, '');
  execute format('create trigger omni_kube_write before insert or update or delete on %s
                    for each row execute function omni_kube._resource_table_write(%L, %L, %L, %L, %L, %L%s)',
                 qualified, group_version, resource, kind, namespaced, transactional,
                 omni_kube._default_namespace(field_selector),
                 coalesce(', ' || quote_literal(cluster), ''));
  if transactional then
    execute format('create constraint trigger omni_kube_apply after insert or update or delete on %s
                      deferrable initially deferred
                      for each row execute function omni_kube._resource_table_apply(%s)', qualified,
                   coalesce(quote_literal(cluster), ''));
  end if;
  execute format($fn$
    create function %I.%I() returns table (type text, object jsonb)
      language sql volatile set search_path = pg_catalog, pg_temp
      as $body$ select r.type, r.object
                  from omni_kube._refresh_resource_tables(array[%L]::text[], array[%L]::text[]%s) r $body$
    $fn$, schema, 'refresh_' || table_name, qualified, path,
    coalesce(', array[' || quote_literal(cluster) || ']::text[]', ''));
  execute format($fn$
    create function %I.%I() returns text
      language sql immutable set search_path = pg_catalog, pg_temp
      as $body$ select %L::text $body$
    $fn$, schema, table_name || '_resource_path', path);
  return qualified::regclass;
end
$$;
