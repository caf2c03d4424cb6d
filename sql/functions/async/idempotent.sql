-- Whether sending a request twice leaves the cluster as sending it once: GET, HEAD, PUT, DELETE and
-- a server-side apply PATCH. Only these are retried, or sent again when a crash leaves it unknown
-- whether the first send arrived.
create or replace function omni_kube._idempotent(method omni_kube.http_method, patch_type text)
  returns boolean
  language sql immutable
  set search_path = pg_catalog, pg_temp
  as $$
    select method in ('GET', 'HEAD', 'PUT', 'DELETE')
        or (method = 'PATCH' and coalesce(patch_type = 'apply', false))
  $$;
revoke all on function omni_kube._idempotent(omni_kube.http_method, text) from public;
