-- The pending_change functions only ever see the caller's own transaction.
create or replace function omni_kube._pending_put(resource_table oid, name text, namespace text,
                                       method omni_kube.http_method, path text, body jsonb)
  returns void
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    insert into omni_kube.pending_change (resource_table, name, namespace, method, path, body)
    values (resource_table, name, namespace, method, path, body)
    on conflict (xact, resource_table, name, (coalesce(namespace, '')))
      do update set method = excluded.method, path = excluded.path, body = excluded.body
  $$;

create or replace function omni_kube._pending_drop(resource_table oid, name text, namespace text) returns void
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    delete from omni_kube.pending_change p
     where p.xact = pg_current_xact_id() and p.resource_table = _pending_drop.resource_table
       and p.name = _pending_drop.name and p.namespace is not distinct from _pending_drop.namespace
  $$;

create or replace function omni_kube._pending_take(resource_table oid)
  returns table (name text, namespace text, method omni_kube.http_method, path text, body jsonb)
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    delete from omni_kube.pending_change p
     where p.xact = pg_current_xact_id() and p.resource_table = _pending_take.resource_table
    returning p.name, p.namespace, p.method, p.path, p.body
  $$;

create or replace function omni_kube._pending_exists(resource_table oid) returns boolean
  language sql stable security definer set search_path = pg_catalog, pg_temp
  as $$
    select exists (select from omni_kube.pending_change p
                    where p.xact = pg_current_xact_id_if_assigned()
                      and p.resource_table = _pending_exists.resource_table)
  $$;
