-- What a live table's worker records between its writes: a relist begun, the version a bookmark
-- moved it to, an attempt that failed. Each only while `worker` still mirrors the table.

create or replace function omni_kube._live_syncing(live bigint, worker uuid) returns boolean
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    update omni_kube.live_registry set state = 'syncing'
     where id = live and worker_id = worker
    returning true
  $$;
revoke all on function omni_kube._live_syncing(bigint, uuid) from public;

-- A bookmark: nothing changed up to `resource_version`, from where the next watch resumes; the
-- watch that sent it runs, so the table is live.
create or replace function omni_kube._live_bookmark(live bigint, worker uuid, resource_version text)
  returns boolean
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    update omni_kube.live_registry l
       set resource_version = _live_bookmark.resource_version, state = 'live', last_error = null
     where l.id = live and l.worker_id = worker
    returning true
  $$;
revoke all on function omni_kube._live_bookmark(bigint, uuid, text) from public;

-- The attempt failed and is retried after a backoff; `expired`: the stored version is gone (410),
-- so the next attempt lists again.
create or replace function omni_kube._live_failed(live bigint, worker uuid, error text, expired boolean)
  returns boolean
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    update omni_kube.live_registry l
       set state = 'backoff', last_error = error,
           resource_version = case when expired then null else l.resource_version end
     where l.id = live and l.worker_id = worker
    returning true
  $$;
revoke all on function omni_kube._live_failed(bigint, uuid, text, boolean) from public;

-- A watch runs again after failures: the table is current once more (a relist, when the version
-- had expired, records its own progress).
create or replace function omni_kube._live_resumed(live bigint, worker uuid) returns boolean
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    update omni_kube.live_registry l
       set state = case when l.resource_version is null then l.state else 'live' end,
           last_error = case when l.resource_version is null then l.last_error end
     where l.id = live and l.worker_id = worker
    returning true
  $$;
revoke all on function omni_kube._live_resumed(bigint, uuid) from public;
