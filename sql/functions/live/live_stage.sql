-- A full list of a live table's objects (its first sync, or a relist) is gathered here, page by
-- page, in the transaction that then reconciles the table with it (omni_kube._live_apply): a
-- temporary table of the worker's session, dropped at commit, so the worker never holds more
-- than one page. A streaming list's objects are copied in (binary COPY) as the bytes the server
-- sent; the columns the reconcile matches on are computed as each row arrives.

create or replace function omni_kube._live_stage_begin() returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  -- The list's transaction waits on the API server between pages, and a streaming list's COPY
  -- lasts as long as the list: limits meant for members' statements must not cut it short.
  perform set_config('statement_timeout', '0', true);
  perform set_config('idle_in_transaction_session_timeout', '0', true);
  if current_setting('server_version_num')::int >= 170000 then
    perform set_config('transaction_timeout', '0', true);
  end if;
  create temporary table omni_kube_live_stage (
    resource jsonb not null,
    uid text not null generated always as (resource #>> '{metadata,uid}') stored,
    name text not null generated always as (resource #>> '{metadata,name}') stored,
    namespace text generated always as (resource #>> '{metadata,namespace}') stored
  ) on commit drop;
end
$$;
revoke all on function omni_kube._live_stage_begin() from public;

-- Watch events of a streaming list's initial state (all ADDED), as a JSON array. (Workers of
-- 0.7.0 and earlier send them so; one may still be running while a newer one upgrades the shim.)
create or replace function omni_kube._live_stage_events(events jsonb) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  insert into pg_temp.omni_kube_live_stage (resource)
  select e -> 'object' from jsonb_array_elements(events) e;
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
  insert into pg_temp.omni_kube_live_stage (resource)
  select jsonb_build_object('kind', regexp_replace(list ->> 'kind', 'List$', ''),
                            'apiVersion', list ->> 'apiVersion') || i
    from jsonb_array_elements(coalesce(list -> 'items', '[]')) i;
  return list -> 'metadata';
end
$$;
revoke all on function omni_kube._live_stage_list(text) from public;
