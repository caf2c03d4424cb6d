-- Functions of earlier releases that this one no longer has, dropped by their signatures
-- (re-creating the rest never removes an object).

-- _call took the role to attribute requests to; it now takes it from the session.
drop function if exists omni_kube._call(name, text, text[], omni_kube.http_method[], jsonb[],
  boolean, text, text, omni_kube.client_certificate, text, int);
-- _raise_for and _transport_status take the failed request's error_code.
drop function if exists omni_kube._raise_for(text, int2, jsonb, text, text);
drop function if exists omni_kube._transport_status(text);

-- _watch's rows gained error_code; a function's result columns cannot change in place.
do $$
begin
  if exists (select from pg_catalog.pg_proc
              where oid = pg_catalog.to_regprocedure('omni_kube._watch(text[], text[], text[], int,
                            text[], text[], text[], text, text, omni_kube.client_certificate, text)')
                and not 'error_code' = any(proargnames)) then
    drop function omni_kube._watch(text[], text[], text[], int, text[], text[], text[], text, text,
                                   omni_kube.client_certificate, text);
  end if;
end
$$;

-- _finish_requests took `announce` (a worker of the previous release calls the new one: the
-- parameter defaults to announcing, as before).
drop function if exists omni_kube._finish_requests(uuid, bigint[], int2[], text[], boolean[],
  boolean[], text[], text[], boolean);

-- _call and _insert_requests take each path's named cluster.
drop function if exists omni_kube._call(text, text[], omni_kube.http_method[], jsonb[], boolean,
  text, text, omni_kube.client_certificate, text, int);
drop function if exists omni_kube._insert_requests(uuid, name, name, int, timestamptz, text,
  omni_kube.http_method[], text[], jsonb[], boolean, text, text, int, boolean, text, text, text,
  text, bytea);
