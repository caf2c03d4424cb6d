-- A string field of a kubeconfig entry; NULL when absent, null or ''.
create or replace function omni_kube._kubeconfig_string(entry jsonb, field text, what text) returns text
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if entry -> field is null or jsonb_typeof(entry -> field) = 'null' then
    return null;
  end if;
  if jsonb_typeof(entry -> field) <> 'string' then
    raise exception 'omni_kube: % of % must be a string', field, what
      using errcode = '22023', hint = 'Quote the value in the YAML.';
  end if;
  return nullif(entry ->> field, '');
end
$$;
revoke all on function omni_kube._kubeconfig_string(jsonb, text, text) from public;
grant execute on function omni_kube._kubeconfig_string(jsonb, text, text) to omni_kube;
