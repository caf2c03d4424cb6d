-- Where objects written without a namespace go: the namespace a view or table is restricted to by
-- its field selector, else "default", as kubectl does.
create or replace function omni_kube._default_namespace(field_selector text) returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$ select coalesce((omni_kube._namespace_term(field_selector)).namespace, 'default') $$;
