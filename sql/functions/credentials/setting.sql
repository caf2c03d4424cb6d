-- A setting's value, NULL when unset or empty: the defaults of api() and watch(). Evaluated with
-- the caller's rights, in the caller's statement: no SET clause, so that they are inlined there
-- rather than parsed and planned again in every transaction.
create or replace function omni_kube._setting(name text) returns text
  language sql stable parallel safe
  as $$ select nullif(pg_catalog.current_setting(name, true), '') $$;
