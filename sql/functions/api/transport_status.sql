-- The Kubernetes Status of a failed call, for the batch form's rows.
create or replace function omni_kube._transport_status(error text) returns jsonb
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select jsonb_build_object('kind', 'Status', 'apiVersion', 'v1', 'status', 'Failure',
                              'reason', 'TransportError', 'message', error, 'code', 0)
  $$;
