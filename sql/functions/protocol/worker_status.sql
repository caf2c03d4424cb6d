-- Inspection: the workers that registered, and whether each is alive now.
create or replace view omni_kube.worker_status as
  select id, host, pid, started_at, last_seen, omni_kube._worker_alive(id) as alive
    from omni_kube.workers;
grant select on omni_kube.worker_status to omni_kube;
grant select on omni_kube.workers to omni_kube;
