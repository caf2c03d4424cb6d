-- omni_kube.resource_table(table_name, group_version, resource, ...): a local table of the
-- objects of one resource, filled from the cluster and brought up to date by refresh_<table>(),
-- which returns what changed (ADDED, MODIFIED, DELETED). Writes to the table go through to the
-- cluster; with transactional => true they are dry-run at once and applied at commit, so nothing
-- reaches the cluster on rollback.

-- Changes to transactional tables wait here for their commit. A row never outlives its
-- transaction: the commit trigger takes it, a rollback discards it. Unlogged: nothing to recover
-- after a crash, since the transaction is gone too. Only the functions below touch it.
create unlogged table omni_kube.pending_change (
  xact xid8 not null default pg_current_xact_id(),
  resource_table oid not null,
  name text not null,
  namespace text,
  method omni_kube.http_method not null,
  path text not null,
  body jsonb,
  unique nulls not distinct (xact, resource_table, name, namespace)
);
revoke all on omni_kube.pending_change from public;

-- The pending_change functions only ever see the caller's own transaction.
create function omni_kube._pending_put(resource_table oid, name text, namespace text,
                                       method omni_kube.http_method, path text, body jsonb)
  returns void
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    insert into omni_kube.pending_change (resource_table, name, namespace, method, path, body)
    values (resource_table, name, namespace, method, path, body)
    on conflict (xact, resource_table, name, namespace)
      do update set method = excluded.method, path = excluded.path, body = excluded.body
  $$;

create function omni_kube._pending_drop(resource_table oid, name text, namespace text) returns void
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    delete from omni_kube.pending_change p
     where p.xact = pg_current_xact_id() and p.resource_table = _pending_drop.resource_table
       and p.name = _pending_drop.name and p.namespace is not distinct from _pending_drop.namespace
  $$;

create function omni_kube._pending_take(resource_table oid)
  returns table (name text, namespace text, method omni_kube.http_method, path text, body jsonb)
  language sql volatile security definer set search_path = pg_catalog, pg_temp
  as $$
    delete from omni_kube.pending_change p
     where p.xact = pg_current_xact_id() and p.resource_table = _pending_take.resource_table
    returning p.name, p.namespace, p.method, p.path, p.body
  $$;

create function omni_kube._pending_exists(resource_table oid) returns boolean
  language sql stable security definer set search_path = pg_catalog, pg_temp
  as $$
    select exists (select from omni_kube.pending_change p
                    where p.xact = pg_current_xact_id_if_assigned()
                      and p.resource_table = _pending_exists.resource_table)
  $$;

-- BEFORE INSERT / UPDATE / DELETE on a resource table: the write goes to the cluster (or, when
-- transactional, is dry-run there and queued for commit) and the row takes the server's answer.
-- Arguments: group version, resource, kind, namespaced, transactional, default namespace.
create function omni_kube._resource_table_write() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  transactional boolean := tg_argv[4]::boolean;
  request omni_kube.resource_request;
  result jsonb;
  created boolean;
begin
  -- Refreshes and commits write the server's state into the table: nothing to send.
  if current_setting('omni_kube.local_only', true) = 'on' then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  request := omni_kube._resource_request(tg_op, tg_argv[0], tg_argv[1], tg_argv[2],
                                         tg_argv[3]::boolean, tg_argv[5], to_jsonb(old),
                                         to_jsonb(new));

  if not transactional then
    result := omni_kube._send(request);
    if tg_op = 'DELETE' then
      return old;
    end if;
    select * into new.uid, new.name, new.namespace from omni_kube._object_columns(result);
    new.resource := result;
    return new;
  end if;

  if tg_op = 'DELETE' then
    -- An object created in this transaction does not exist yet: forget its creation.
    if old.new then
      perform omni_kube._pending_drop(tg_relid, request.name, request.namespace);
      return old;
    end if;
    begin
      perform omni_kube.api(omni_kube.path_with(request.path, dry_run => true), method => 'DELETE');
      perform omni_kube._pending_put(tg_relid, request.name, request.namespace, 'DELETE', request.path, null);
    exception when sqlstate 'OK404' then
      perform omni_kube._pending_drop(tg_relid, request.name, request.namespace);
    end;
    return old;
  end if;

  -- A row inserted in this transaction is still a creation when it is updated.
  created := case when tg_op = 'INSERT' then true else old.new end;
  if created then
    request.method := 'POST';
    request.path := request.collection;
  end if;
  result := omni_kube.api(omni_kube.path_with(request.path, dry_run => true),
                          method => request.method, body => request.body);
  if created then
    -- The dry run picked the name (generateName); the object created at commit gets that name.
    request.body := jsonb_set(request.body, '{metadata}',
                              ((request.body -> 'metadata') - 'generateName')
                              || jsonb_build_object('name', result #>> '{metadata,name}'));
    -- Its uid is the dry run's, not the one the object will get.
    result := result #- '{metadata,uid}';
  end if;
  perform omni_kube._pending_put(tg_relid, result #>> '{metadata,name}',
                                 result #>> '{metadata,namespace}', request.method, request.path,
                                 request.body);
  select * into new.uid, new.name, new.namespace from omni_kube._object_columns(result);
  new.resource := result;
  new.new := created;
  new.committed := false;
  return new;
end
$$;

-- Deferred to commit on transactional tables: sends the transaction's changes, in parallel, and
-- writes what the server answered into the rows. A failure aborts the commit; the changes that
-- were already applied stay applied (Kubernetes has no transactions), and the error lists them.
create function omni_kube._resource_table_apply() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  names text[];
  namespaces text[];
  methods omni_kube.http_method[];
  paths text[];
  bodies jsonb[];
  answer record;
  failures text[] := '{}';
  applied int := 0;
  local_only text := current_setting('omni_kube.local_only', true);
begin
  select array_agg(p.name), array_agg(p.namespace), array_agg(p.method), array_agg(p.path),
         array_agg(p.body)
    into names, namespaces, methods, paths, bodies
    from omni_kube._pending_take(tg_relid) p;
  if paths is null then
    return null; -- another row's trigger applied them already
  end if;
  perform set_config('omni_kube.local_only', 'on', true);
  for answer in
    select a.response, a.status, a.n
      from omni_kube.api(paths, methods => methods, bodies => bodies) with ordinality a(response, status, n)
  loop
    if answer.status between 200 and 299 or (methods[answer.n] = 'DELETE' and answer.status = 404) then
      applied := applied + 1;
      if methods[answer.n] = 'POST' then
        execute format('update %s set uid = $1, resource = $2, new = false, committed = true
                         where name = $3 and namespace is not distinct from $4', tg_relid::regclass)
          using answer.response #>> '{metadata,uid}', answer.response, names[answer.n], namespaces[answer.n];
      elsif methods[answer.n] = 'PUT' then
        execute format('update %s set resource = $1, committed = true
                         where name = $2 and namespace is not distinct from $3', tg_relid::regclass)
          using answer.response, names[answer.n], namespaces[answer.n];
      end if;
    else
      failures := failures || format('%s %s: %s %s', methods[answer.n], paths[answer.n],
                                     nullif(answer.status, 0), coalesce(answer.response ->> 'message', ''));
    end if;
  end loop;
  perform set_config('omni_kube.local_only', coalesce(local_only, ''), true);
  if cardinality(failures) > 0 then
    raise exception 'omni_kube: % of % changes to % failed at commit', cardinality(failures),
                    cardinality(paths), tg_relid::regclass
      using errcode = 'OKC01', detail = array_to_string(failures, E'\n'),
        hint = format('The transaction is rolled back, but %s change(s) had already reached the cluster; refresh the table to see them.', applied);
  end if;
  return null;
end
$$;

-- Brings a table in line with the objects listed from the cluster, returning what changed. A row
-- and an object are the same when name, namespace and uid agree (a few kinds, such as
-- ComponentStatus, have no uid); it changed when its resourceVersion (or, without one, its content)
-- did.
create function omni_kube._merge_resource_table(resource_table regclass, listed jsonb[])
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

-- Refreshes several tables, listing all their collections in parallel.
create function omni_kube._refresh_resource_tables(tables text[], paths text[])
  returns table (resource_table regclass, type text, object jsonb)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  indexes int[];
  objects jsonb[];
begin
  for i in 1 .. cardinality(tables) loop
    if omni_kube._pending_exists(tables[i]::regclass) then
      raise exception 'omni_kube: % has changes waiting for this transaction''s commit', tables[i]::regclass
        using errcode = '55000', hint = 'Commit or roll back before refreshing it.';
    end if;
  end loop;
  select array_agg(l.path_index), array_agg(l.object) into indexes, objects
    from omni_kube._list_collections(paths) l;
  for i in 1 .. cardinality(tables) loop
    return query
      select tables[i]::regclass, m.type, m.object
        from omni_kube._merge_resource_table(tables[i]::regclass,
               array(select u.object from unnest(indexes, objects) u(path_index, object)
                      where u.path_index = i)) m;
  end loop;
end
$$;

-- Creates the table (empty), its triggers and its functions; discovery already done.
create function omni_kube._create_resource_table(
  schema name, table_name name, group_version text, resource text, kind text, namespaced boolean,
  label_selector text, field_selector text, transactional boolean
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  qualified text := format('%I.%I', schema, table_name);
  path text := omni_kube._list_path(group_version, resource, label_selector, field_selector, null);
begin
  execute format('create table %s (
                    uid text unique,
                    name text not null,
                    namespace text,
                    resource jsonb not null,
                    %s
                    unique nulls not distinct (name, namespace))',
                 qualified,
                 case when transactional
                      then 'new boolean not null default false, committed boolean not null default true,'
                      else '' end);
  execute format('create trigger omni_kube_write before insert or update or delete on %s
                    for each row execute function omni_kube._resource_table_write(%L, %L, %L, %L, %L, %L)',
                 qualified, group_version, resource, kind, namespaced, transactional,
                 omni_kube._default_namespace(field_selector));
  if transactional then
    execute format('create constraint trigger omni_kube_apply after insert or update or delete on %s
                      deferrable initially deferred
                      for each row execute function omni_kube._resource_table_apply()', qualified);
  end if;
  execute format($fn$
    create function %I.%I() returns table (type text, object jsonb)
      language sql volatile set search_path = pg_catalog, pg_temp
      as $body$ select r.type, r.object
                  from omni_kube._refresh_resource_tables(array[%L]::text[], array[%L]::text[]) r $body$
    $fn$, schema, 'refresh_' || table_name, qualified, path);
  execute format($fn$
    create function %I.%I() returns text
      language sql immutable set search_path = pg_catalog, pg_temp
      as $body$ select %L::text $body$
    $fn$, schema, table_name || '_resource_path', path);
  return qualified::regclass;
end
$$;

create function omni_kube.resource_table(
  table_name name,
  group_version text,
  resource text,
  label_selector text default null,
  field_selector text default null,
  transactional boolean default false,
  -- Evaluated in the caller's session, before this function's own search_path applies.
  schema name default current_schema()
) returns regclass
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  description record := omni_kube._describe_resource(group_version, resource);
  created regclass := omni_kube._create_resource_table(
    omni_kube._target_schema(schema), table_name, group_version, resource, description.kind,
    description.namespaced, label_selector, field_selector, coalesce(transactional, false));
begin
  -- Filled by its own refresh function, which returns the objects as ADDED.
  execute format('select from %I.%I()', schema, 'refresh_' || table_name);
  return created;
end
$$;

grant execute on function omni_kube.resource_table(name, text, text, text, text, boolean, name) to omni_kube;
