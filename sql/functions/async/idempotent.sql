-- Whether sending a request twice leaves the cluster as sending it once: GET, HEAD, PUT, DELETE and
-- a server-side apply PATCH. Only these are retried, or sent again when a crash leaves it unknown
-- whether the first send arrived. (No SET clause, and only qualified names: inlined into the claim,
-- which asks it of every request it takes.)
create or replace function omni_kube._idempotent(method omni_kube.http_method, patch_type text)
  returns boolean
  language sql immutable parallel safe
  as $$
    select method operator(pg_catalog.=) any (
             array['GET', 'HEAD', 'PUT', 'DELETE']::omni_kube.http_method[])
        or (method operator(pg_catalog.=) 'PATCH'::omni_kube.http_method
            and coalesce(patch_type operator(pg_catalog.=) 'apply', false))
  $$;
revoke all on function omni_kube._idempotent(omni_kube.http_method, text) from public;
