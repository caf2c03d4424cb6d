-- BEFORE INSERT / UPDATE / DELETE on a resource table: the write goes to the cluster (or, when
-- transactional, is dry-run there and queued for commit) and the row takes the server's answer.
-- Arguments: group version, resource, kind, namespaced, transactional, default namespace, and the
-- named cluster of a table that has one.
create or replace function omni_kube._resource_table_write() returns trigger
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  transactional boolean := tg_argv[4]::boolean;
  cluster text := case when tg_nargs > 6 then tg_argv[6] end;
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
    result := omni_kube._send(request, cluster);
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
      perform omni_kube.api(omni_kube.path_with(request.path, dry_run => true),
                            cluster => cluster, method => 'DELETE');
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
  result := omni_kube.api(omni_kube.path_with(request.path, dry_run => true), cluster => cluster,
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
