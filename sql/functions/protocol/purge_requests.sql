-- Maintenance, run by every worker now and then (`worker` is the one running it): cancels the
-- requests of workers that died while nobody waited for them (one that is only reconnecting has a
-- recent heartbeat), deletes requests (sync, and async whose callback has run) finished more than
-- `retention_seconds` ago, workers silent for an hour, response pieces nobody will assemble and the
-- cluster grants of dropped roles (whose oid a new role could be given). Returns the number of
-- requests deleted.
create or replace function omni_kube._purge_requests(worker uuid, retention_seconds int)
  returns int
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  purged int;
begin
  perform omni_kube._cancel_dead_worker_requests(array(
    select r.id from omni_kube.request r
     where r.state = 'running' and r.worker_id <> worker
       and not exists (select from omni_kube.workers w
                        where w.id = r.worker_id and w.last_seen > now() - interval '30 seconds')));
  delete from omni_kube.request where finished_at < now() - make_interval(secs => retention_seconds);
  get diagnostics purged = row_count;
  -- An async request is kept until its callback has run too.
  delete from omni_kube.async_request
   where finished_at < now() - make_interval(secs => retention_seconds)
     and callback_state is distinct from 'pending';
  delete from omni_kube.workers w
   where w.id <> worker and w.last_seen < now() - interval '1 hour';
  -- Pieces of a body whose worker stopped, or whose caller gave up. (An async request's are
  -- under its id negated.)
  delete from omni_kube.response_piece p
   where not exists (select from omni_kube.request r
                      where r.id = p.request_id and r.state = 'running')
     and not exists (select from omni_kube.async_request a
                      where a.id = -p.request_id and a.state = 'running');
  delete from omni_kube.cluster_grant g
   where not exists (select from pg_catalog.pg_roles r where r.oid = g.grantee);
  return purged;
end
$$;
revoke all on function omni_kube._purge_requests(uuid, int) from public;
