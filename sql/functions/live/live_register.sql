-- Records a new live table for the workers (live_table() calls it once the table exists), on
-- behalf of the table's owner: the caller must be able to act as that role. The workers are
-- woken when the caller's transaction commits; until then no worker can see the table.
create or replace function omni_kube._live_register(
  relation regclass, group_version text, resource text, namespace text, label_selector text,
  field_selector text, path text
) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  caller constant name := omni_kube._session_role();
begin
  if not pg_has_role(caller, (select relowner from pg_class where oid = relation), 'USAGE') then
    raise exception 'omni_kube: only the owner of % may make it live', relation
      using errcode = '42501';
  end if;
  insert into omni_kube.live_registry (relation, group_version, resource, namespace, label_selector,
                                    field_selector, path)
  values (relation, group_version, resource, namespace, label_selector, field_selector, path);
  perform pg_notify('omni_kube_live', '');
end
$$;
revoke all on function omni_kube._live_register(regclass, text, text, text, text, text, text) from public;
grant execute on function omni_kube._live_register(regclass, text, text, text, text, text, text) to omni_kube;
