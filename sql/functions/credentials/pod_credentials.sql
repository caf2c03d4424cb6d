-- omni_kube.pod_credentials(): the service-account token and CA of the pod the worker runs in,
-- as the worker published them at start.

create or replace function omni_kube.pod_credentials(out token text, out cacert text)
  language plpgsql stable security definer
  set search_path = pg_catalog, pg_temp
  as $$
begin
  select c.token, c.cacert into token, cacert
    from omni_kube.worker_pod_credentials c
    join omni_kube.workers w on w.id = c.worker_id
   where omni_kube._worker_alive(w.id)
   order by c.read_at desc
   limit 1;
  if not found then
    raise exception 'omni_kube: no running worker has pod credentials'
      using errcode = 'OKW03',
        hint = 'pod_credentials() needs a worker running in a Kubernetes pod with a service account mounted at /var/run/secrets/kubernetes.io/serviceaccount.';
  end if;
end
$$;
revoke all on function omni_kube.pod_credentials() from public;
grant execute on function omni_kube.pod_credentials() to omni_kube;
