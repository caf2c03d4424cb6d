-- omni_kube.live_tables: one row per live table the caller may see (its owner, members of that
-- role, superusers), with how far its mirror has got. `state` is `stopped` while no live worker
-- mirrors it (one whose own cluster is `server` takes it over within seconds).
create or replace view omni_kube.live_tables with (security_barrier) as
  select n.nspname as schema_name,
         c.relname as table_name,
         l.group_version,
         l.resource,
         l.namespace,
         l.label_selector,
         l.field_selector,
         case when l.worker_id is null or not omni_kube._worker_alive(l.worker_id) then 'stopped'
              else l.state end as state,
         l.objects,
         l.resource_version,
         l.synced_at,
         l.last_event_at,
         l.relists,
         l.last_error,
         l.server,
         l.worker_id
    from omni_kube.live_registry l
    join pg_catalog.pg_class c on c.oid = l.relation
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE');
grant select on omni_kube.live_tables to omni_kube;
