-- A dropped live table leaves nothing behind: its registry row and its writer go in the dropping
-- transaction (so that a later table given the same oid is never written by a worker), and the
-- workers are told at once to stop its informer.
create or replace function omni_kube._live_dropped() returns event_trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  gone bigint;
begin
  for gone in
    delete from omni_kube.live_registry l
     using pg_event_trigger_dropped_objects() d
     where d.classid = 'pg_class'::regclass and d.objsubid = 0 and d.objid = l.relation
    returning l.id
  loop
    execute format('drop function if exists omni_kube_live.%I(jsonb, boolean)', 'write_' || gone);
    perform pg_notify('omni_kube_live', '');
  end loop;
end
$$;
revoke all on function omni_kube._live_dropped() from public;

drop event trigger if exists omni_kube_live_dropped;
create event trigger omni_kube_live_dropped on sql_drop
  execute function omni_kube._live_dropped();
