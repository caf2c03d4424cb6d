-- Puts `value` into a collection: under `key` in a mapping, at the end of a sequence.
create or replace function omni_kube._yaml_attach(kind text, collection jsonb, key text, value jsonb)
  returns jsonb
  language sql immutable
  set search_path = pg_catalog, pg_temp
  as $$
    select case when kind = 'map' then collection || jsonb_build_object(key, value)
                else collection || jsonb_build_array(value) end
  $$;
revoke all on function omni_kube._yaml_attach(text, jsonb, text, jsonb) from public;
grant execute on function omni_kube._yaml_attach(text, jsonb, text, jsonb) to omni_kube;
