-- A full list of a live table's objects (its first sync, or a relist) is gathered here, page by
-- page, in the transaction that then reconciles the table with it (omni_kube._live_apply): a
-- temporary table of the worker's session, dropped at commit, so the worker never holds more
-- than one page. A streaming list's events are copied (binary COPY, the server's bytes as they
-- came) into pg_temp.omni_kube_live_stage_event, and moved into the stage at the list's end.

create or replace function omni_kube._live_stage_begin() returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  create temporary table omni_kube_live_stage (
    uid text not null,
    name text not null,
    namespace text,
    resource jsonb not null
  ) on commit drop;
  create temporary table omni_kube_live_stage_event (event jsonb not null) on commit drop;
end
$$;
revoke all on function omni_kube._live_stage_begin() from public;

-- The events copied into omni_kube_live_stage_event (a streaming list's initial state, all
-- ADDED), moved into the stage.
create or replace function omni_kube._live_stage_copied() returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into pg_temp.omni_kube_live_stage (uid, name, namespace, resource)
  select o -> 'metadata' ->> 'uid', o -> 'metadata' ->> 'name', o -> 'metadata' ->> 'namespace', o
    from pg_temp.omni_kube_live_stage_event e, lateral (select e.event -> 'object') j(o);
  truncate pg_temp.omni_kube_live_stage_event;
end
$$;
revoke all on function omni_kube._live_stage_copied() from public;

-- Watch events of a streaming list's initial state (all ADDED), as a JSON array. (Workers of
-- 0.7.0 and earlier send them so; one may still be running while a newer one upgrades the shim.)
create or replace function omni_kube._live_stage_events(events jsonb) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into pg_temp.omni_kube_live_stage (uid, name, namespace, resource)
  select o -> 'metadata' ->> 'uid', o -> 'metadata' ->> 'name', o -> 'metadata' ->> 'namespace', o
    from jsonb_array_elements(events) e, lateral (select e -> 'object') j(o);
end
$$;
revoke all on function omni_kube._live_stage_events(jsonb) from public;

-- One page of a list, as the server sent it; returns its metadata (continue, resourceVersion).
-- A list's items carry no kind or apiVersion; they are given the list's, as a watch's objects
-- have them, so that a row is the same whichever way it came.
create or replace function omni_kube._live_stage_list(page text) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  list constant jsonb := page::jsonb;
begin
  insert into pg_temp.omni_kube_live_stage (uid, name, namespace, resource)
  select o -> 'metadata' ->> 'uid', o -> 'metadata' ->> 'name', o -> 'metadata' ->> 'namespace', o
    from jsonb_array_elements(coalesce(list -> 'items', '[]')) i,
         lateral (select jsonb_build_object('kind', regexp_replace(list ->> 'kind', 'List$', ''),
                                            'apiVersion', list ->> 'apiVersion') || i) t(o);
  return list -> 'metadata';
end
$$;
revoke all on function omni_kube._live_stage_list(text) from public;
