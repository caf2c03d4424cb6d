-- INSTEAD OF INSERT / UPDATE / DELETE on a resource view.
-- Arguments: group version, resource, kind, namespaced, default namespace, and the named cluster
-- of a view that has one.
create or replace function omni_kube._resource_view_write() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  request omni_kube.resource_request := omni_kube._resource_request(
    tg_op, tg_argv[0], tg_argv[1], tg_argv[2], tg_argv[3]::boolean, tg_argv[4], to_jsonb(old),
    to_jsonb(new));
  cluster text := case when tg_nargs > 5 then tg_argv[5] end;
  result jsonb;
begin
  result := omni_kube._send(request, cluster);
  if tg_op = 'DELETE' then
    return old;
  end if;
  select * into new.uid, new.name, new.namespace from omni_kube._object_columns(result);
  new.resource := result;
  return new;
end
$$;
