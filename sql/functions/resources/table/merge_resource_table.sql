-- Brings a table in line with the objects listed from the cluster, returning what changed. A row
-- and an object are the same when name, namespace and uid agree (a few kinds, such as
-- ComponentStatus, have no uid); it changed when its resourceVersion (or, without one, its content)
-- did.
create or replace function omni_kube._merge_resource_table(resource_table regclass, listed jsonb[])
  returns table (type text, object jsonb)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set omni_kube.local_only = 'on'
  as $$
declare
  same_object constant text := $same$
    t.name = o #>> '{metadata,name}'
    and coalesce(t.namespace, '') = coalesce(o #>> '{metadata,namespace}', '')
    and t.uid is not distinct from o #>> '{metadata,uid}' $same$;
begin
  -- Three statements, in this order, so a name deleted and created again (a new uid) frees its
  -- (name, namespace) before the new object takes it.
  return query execute format($sql$
    with gone as (
      delete from %s t where not exists (select from unnest($1) o where %s)
      returning t.resource)
    select 'DELETED'::text, resource from gone
    $sql$, resource_table, same_object) using listed;
  return query execute format($sql$
    with added as (
      insert into %1$s (uid, name, namespace, resource)
      select o #>> '{metadata,uid}', o #>> '{metadata,name}', o #>> '{metadata,namespace}', o
        from unnest($1) o
       where not exists (select from %1$s t where %2$s)
      returning resource)
    select 'ADDED'::text, resource from added
    $sql$, resource_table, same_object) using listed;
  return query execute format($sql$
    with changed as (
      update %s t set resource = o
        from unnest($1) o
       where %s
         and case when o #> '{metadata,resourceVersion}' is null then t.resource <> o
                  else t.resource #> '{metadata,resourceVersion}' is distinct from o #> '{metadata,resourceVersion}' end
      returning t.resource)
    select 'MODIFIED'::text, resource from changed
    $sql$, resource_table, same_object) using listed;
end
$$;
