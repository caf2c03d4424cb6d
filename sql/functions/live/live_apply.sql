-- Writes what a live table's worker saw into the table, as the table's owner, and records how far
-- the mirror has got; the worker calls it once per batch, each in a transaction of its own.
--
-- `replace`: the table becomes the list gathered in pg_temp.omni_kube_live_stage (its first sync,
-- or a relist): it is reconciled in place, objects gone deleted, new ones inserted and changed ones
-- updated, so that a reader sees it whole before the commit and whole after it. Otherwise `events`
-- are watch events (a JSON array of them), applied one by one in order.
--
-- The writes fire the owner's triggers, which must run with the owner's rights and never the
-- worker's. They are made by the table's writer (omni_kube._live_writer), a SECURITY DEFINER
-- function owned by the owner, with the session's role set to the owner: inside it SET ROLE and
-- SET SESSION AUTHORIZATION are refused, so no trigger can take the worker's role back, and calls
-- the triggers make through the bridge are the owner's. Deferred triggers are fired before it returns (SET CONSTRAINTS ALL
-- IMMEDIATE); what could still run at commit, outside it (a deferred trigger deferred again, a
-- cursor WITH HOLD), is closed or refused before anything commits.
-- The worker discards its session's state after each transaction (lib/live/sessions.ts), so
-- nothing a trigger leaves there reaches the next table's writes.
create or replace function omni_kube._live_apply(
  live bigint, worker uuid, events jsonb, resource_version text, replace boolean
) returns bigint
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  entry omni_kube.live_registry;
  target text;
  owner name;
  counts bigint[];
  leftover text;
  writer text;
begin
  -- The table's lock before the registry row's, in the order DROP TABLE takes them (the table,
  -- then the row, in omni_kube._live_dropped), so that a drop during a write waits for it.
  select format('%I.%I', n.nspname, c.relname), r.rolname into target, owner
    from omni_kube.live_registry l
    join pg_class c on c.oid = l.relation
    join pg_namespace n on n.oid = c.relnamespace
    join pg_roles r on r.oid = c.relowner
   where l.id = live
     and exists (select from pg_trigger t where t.tgrelid = c.oid and t.tgname = 'omni_kube_live_guard');
  if target is not null then
    execute format('lock table %s in row exclusive mode', target);
  end if;
  select * into entry from omni_kube.live_registry l where l.id = live for update;
  if not found or entry.worker_id is distinct from worker then
    raise exception 'omni_kube: live table % is no longer this worker''s to mirror', live
      using errcode = 'OKV02';
  end if;
  if target is null then
    raise exception 'omni_kube: live table % (%) lost its guard trigger omni_kube_live_guard, so it is no longer written',
                    live, entry.relation::regclass
      using errcode = 'OKV04',
        hint = 'Drop the table and make it again with omni_kube.live_table().';
  end if;

  -- The table's writer: made anew if it is missing, was made for another name of the table, or
  -- is no longer a SECURITY DEFINER function of the table's owner.
  writer := format('omni_kube_live.%I', 'write_' || live);
  if entry.writer_target is distinct from target or not exists (
       select from pg_proc p
        where p.oid = to_regprocedure(writer || '(jsonb, boolean)')
          and p.prosecdef and p.proowner = (select relowner from pg_class where oid = entry.relation)) then
    perform omni_kube._live_writer(live, target, owner);
  end if;
  if replace then
    execute format('grant select on pg_temp.omni_kube_live_stage to %I', owner);
  end if;

  perform set_config('omni_kube.live_applying', 'on', true);
  perform set_config('role', owner, true);
  counts := omni_kube._live_invoke(live, events, replace);
  perform set_config('role', 'none', true);
  perform set_config('omni_kube.live_applying', '', true);
  -- A cursor WITH HOLD declared by a trigger would run the rest of its query at commit.
  execute 'close all';

  -- What could still escape the owner's rights at commit (omni_kube._deferred_escape).
  leftover := omni_kube._deferred_escape(owner);
  if leftover is not null then
    raise exception 'omni_kube: live table % was not written: deferrable trigger % would run at commit, outside its owner''s rights',
                    target, leftover
      using errcode = 'OKV03',
        hint = 'Triggers that a live table''s changes reach must fire at once: make that trigger NOT DEFERRABLE.';
  end if;

  update omni_kube.live_registry l
     set resource_version = coalesce(_live_apply.resource_version, l.resource_version),
         writer_target = target,
         state = 'live',
         last_error = null,
         objects = case when replace then counts[1] else greatest(l.objects + counts[1] - counts[2], 0) end,
         synced_at = case when replace then now() else l.synced_at end,
         relists = l.relists + case when replace and l.synced_at is not null then 1 else 0 end,
         last_event_at = case when not replace and jsonb_array_length(events) > 0 then now()
                              else l.last_event_at end
   where l.id = live;
  return case when replace then counts[1] else null end;
end
$$;
revoke all on function omni_kube._live_apply(bigint, uuid, jsonb, text, boolean) from public;
