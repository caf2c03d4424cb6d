-- omni_kube.live_table(table_name, group_version, resource, ...): a table of the objects of one
-- resource, owned by the caller, that a worker keeps current (list, then watch; relist when the
-- version expires). Columns as a resource_table's: uid, name, namespace, resource. Members read,
-- index and join it and attach their own triggers, which run with the owner's rights; only the
-- worker writes it. It mirrors the worker's own cluster.
create or replace function omni_kube.live_table(
  table_name name,
  group_version text,
  resource text,
  namespace text default null,
  label_selector text default null,
  field_selector text default null,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema()
) returns regclass
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  path text;
  qualified text;
  created regclass;
  message text;
  code text;
begin
  if table_name is null or resource is null or resource = '' then
    raise exception 'omni_kube: live_table() needs a table name and a resource'
      using errcode = '22004', hint = 'For example: omni_kube.live_table(''pods'', ''v1'', ''pods'').';
  end if;
  perform omni_kube._check_group_version(group_version);
  path := omni_kube._list_path(group_version, resource, label_selector, field_selector, namespace);
  -- What would never sync is refused now, not shown as an empty table: an unknown resource, or
  -- one the worker may not list. Asked of the worker's own cluster, as the informer will.
  begin
    perform omni_kube.api(omni_kube._append_query(path, 'limit=1'), server => null,
                          cacert => null, clientcert => null, token => null);
  exception when others then
    get stacked diagnostics message = message_text, code = returned_sqlstate;
    raise exception 'omni_kube: cannot mirror % % (%): %', group_version, resource, path, message
      using errcode = code,
        hint = case code
                 when 'OK404' then 'Check the plural resource name and its group version: omni_kube.group_resources(''' || group_version || ''') lists them.'
                 when 'OK403' then 'The worker''s own credentials may not list it: grant its account list and watch on the resource.'
                 else 'The worker must be running and its own cluster reachable.' end;
  end;
  qualified := format('%I.%I', omni_kube._target_schema(schema), table_name);
  execute format('create table %s (
                    uid text primary key,
                    name text not null,
                    namespace text,
                    resource jsonb not null)', qualified);
  created := qualified::regclass;
  -- (The condition spares the worker's writes a function call per row.)
  execute format('create trigger omni_kube_live_guard before insert or update or delete on %s
                    for each row
                    when (current_setting(''omni_kube.live_applying'', true) is distinct from ''on'')
                    execute function omni_kube._live_guard()', qualified);
  execute format('create trigger omni_kube_live_guard_truncate before truncate on %s
                    for each statement execute function omni_kube._live_guard()', qualified);
  perform omni_kube._live_register(created, group_version, resource, namespace, label_selector,
                                   field_selector, path);
  return created;
end
$$;
grant execute on function omni_kube.live_table(name, text, text, text, text, text, name) to omni_kube;
