-- A live table's writer: the function that writes what its worker saw into it, as its owner
-- (omni_kube._live_apply calls it; see there why). One per table, omni_kube_live.write_<id>,
-- owned by the table's owner and SECURITY DEFINER, in a schema nobody else may use, so that its
-- owner can neither call nor change it. Made when first needed and again when the table is
-- renamed or changes owner; its plans stay cached in the worker's sessions from batch to batch.
-- Every writer is made anew after this layer is (below), so that each table's has this body.
--
-- `replace`: the table becomes the list gathered in pg_temp.omni_kube_live_stage. Otherwise
-- `events` are watch events (a JSON array of them), applied one by one in order. Returns the objects added
-- and removed.
create or replace function omni_kube._live_writer(live bigint, target text, owner name) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  writer constant text := format('omni_kube_live.%I', 'write_' || live);
begin
  execute format($f$
    create or replace function %2$s(events jsonb, replace boolean) returns bigint[]
      language plpgsql volatile security definer
      -- The owner's triggers run in here: the search_path a session of theirs would have.
      set search_path = "$user", public, pg_temp
      as $body$
    declare
      event record;
      inserted boolean;
      added bigint := 0;
      removed bigint := 0;
    begin
      if replace then
        -- The first list (or a relist of an empty table): nothing to reconcile with, so a plain
        -- insert, at half the cost of the reconcile below. A list holds each object once; should
        -- one repeat, the reconcile keeps one of each.
        if not exists (select from %1$s)
           and not exists (select from pg_temp.omni_kube_live_stage s group by s.uid
                            having count(*) > 1) then
          insert into %1$s (uid, name, namespace, resource)
          select s.uid, s.name, s.namespace, s.resource from pg_temp.omni_kube_live_stage s;
          select count(*) into added from pg_temp.omni_kube_live_stage s;
          set constraints all immediate;
          return array[added, 0];
        end if;
        delete from %1$s t
         where not exists (select from pg_temp.omni_kube_live_stage s where s.uid = t.uid);
        get diagnostics removed = row_count;
        insert into %1$s as t (uid, name, namespace, resource)
        select distinct on (s.uid) s.uid, s.name, s.namespace, s.resource
          from pg_temp.omni_kube_live_stage s
        on conflict (uid) do update
          set name = excluded.name, namespace = excluded.namespace, resource = excluded.resource
          where t.resource -> 'metadata' ->> 'resourceVersion'
                is distinct from excluded.resource -> 'metadata' ->> 'resourceVersion';
        select count(distinct s.uid) into added from pg_temp.omni_kube_live_stage s;
        set constraints all immediate;
        return array[added, 0];
      end if;
      for event in
        select e ->> 'type' as type, e -> 'object' as object
          from jsonb_array_elements(events) with ordinality j(e, n)
         order by j.n
      loop
        if event.type = 'DELETED' then
          delete from %1$s where uid = event.object -> 'metadata' ->> 'uid';
          if found then
            removed := removed + 1;
          end if;
        elsif event.type in ('ADDED', 'MODIFIED') then
          inserted := null;
          insert into %1$s as t (uid, name, namespace, resource)
          values (event.object -> 'metadata' ->> 'uid', event.object -> 'metadata' ->> 'name',
                  event.object -> 'metadata' ->> 'namespace', event.object)
          on conflict (uid) do update
            set name = excluded.name, namespace = excluded.namespace, resource = excluded.resource
            where t.resource -> 'metadata' ->> 'resourceVersion'
                  is distinct from excluded.resource -> 'metadata' ->> 'resourceVersion'
          returning xmax = 0 into inserted;
          if inserted then
            added := added + 1;
          end if;
        end if;
      end loop;
      set constraints all immediate;
      return array[added, removed];
    end
    $body$
  $f$, target, writer);
  execute format('alter function %s(jsonb, boolean) owner to %I', writer, owner);
  execute format('revoke all on function %s(jsonb, boolean) from public', writer);
end
$$;
revoke all on function omni_kube._live_writer(bigint, text, name) from public;

-- Calls live table `live`'s writer. The worker calls it with the session's role set to the
-- table's owner (so that the bridge calls its triggers make are the owner's), and as that role
-- could not reach the writers' schema; this function can, for the worker's sessions only.
create or replace function omni_kube._live_invoke(live bigint, events jsonb, replace boolean)
  returns bigint[]
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  counts bigint[];
begin
  if session_user <> (select nspowner::regrole::name from pg_namespace where nspname = 'omni_kube') then
    raise exception 'omni_kube: only the workers write live tables' using errcode = '42501';
  end if;
  execute format('select omni_kube_live.%I($1, $2)', 'write_' || live) into counts
    using events, replace;
  return counts;
end
$$;
grant execute on function omni_kube._live_invoke(bigint, jsonb, boolean) to public;

-- Each table's writer is made anew, from the function above, at the table's next write. (In this
-- layer's transaction: a writer made in between would have the previous body.)
update omni_kube.live_registry set writer_target = null;
