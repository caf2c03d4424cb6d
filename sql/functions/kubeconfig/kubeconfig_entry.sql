-- The entry named `name` in the kubeconfig list `list` (contexts, clusters, users).
create or replace function omni_kube._kubeconfig_entry(config jsonb, list text, kind text, name text)
  returns jsonb
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
declare
  entries constant jsonb := case when jsonb_typeof(config -> list) = 'array' then config -> list
                                 else '[]' end;
  entry jsonb;
  names text;
begin
  select e into entry from jsonb_array_elements(entries) e
   where jsonb_typeof(e) = 'object' and e ->> 'name' = name limit 1;
  if entry is null then
    select string_agg(format('"%s"', e ->> 'name'), ', ' order by ordinality) into names
      from jsonb_array_elements(entries) with ordinality as x(e, ordinality)
     where jsonb_typeof(e) = 'object' and e ->> 'name' is not null;
    raise exception 'omni_kube: the kubeconfig has no % named "%"', kind, name
      using errcode = '42704',
        detail = case when names is null then format('It has no %s.', list)
                      else format('Its %s: %s.', list, names) end;
  end if;
  return case when jsonb_typeof(entry -> kind) = 'object' then entry -> kind else '{}' end;
end
$$;
revoke all on function omni_kube._kubeconfig_entry(jsonb, text, text, text) from public;
grant execute on function omni_kube._kubeconfig_entry(jsonb, text, text, text) to omni_kube;
