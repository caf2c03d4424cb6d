-- Which worker mirrors which live table: exactly one at a time. A worker takes the tables nobody
-- mirrors and those whose worker is no longer alive, and lets go of its own when it stops.

-- Takes, for `worker`, whose own cluster is `server`, every live table of that server (or of
-- none yet) that no live worker mirrors; returns what each watches and where it resumes.
create or replace function omni_kube._live_claim(worker uuid, server text)
  returns table (id bigint, path text, resource_version text)
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    with orphaned as (
      select l.id from omni_kube.live_registry l
       where _live_claim.server is not null
         and (l.server is null or l.server = _live_claim.server)
         and (l.worker_id is null
              or (l.worker_id <> worker and not omni_kube._worker_alive(l.worker_id)))
         for update skip locked
    )
    update omni_kube.live_registry l
       -- A table with a version resumes from it and stays as current as it was; one without lists.
       set worker_id = worker,
           server = _live_claim.server,
           state = case when l.resource_version is null then 'syncing' else l.state end
      from orphaned o
     where l.id = o.id
    returning l.id, l.path, l.resource_version
  $$;
revoke all on function omni_kube._live_claim(uuid, text) from public;

-- Lets go of `worker`'s live tables (it stops): another worker takes them at once.
create or replace function omni_kube._live_release(worker uuid) returns void
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$
    update omni_kube.live_registry set worker_id = null where worker_id = worker;
    select pg_notify('omni_kube_live', '');
  $$;
revoke all on function omni_kube._live_release(uuid) from public;
