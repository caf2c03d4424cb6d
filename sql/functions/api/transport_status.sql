-- The Kubernetes Status of a failed call, for the batch forms' rows: the reason says why it got no
-- answer (its error_code: a limit of the worker's, an async request a crash interrupted, else a
-- transport error).
create or replace function omni_kube._transport_status(error text, error_code text) returns jsonb
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select jsonb_build_object('kind', 'Status', 'apiVersion', 'v1', 'status', 'Failure',
                              'reason', case error_code when 'OKL01' then 'ResponseTooLarge'
                                                        when 'OKL02' then 'TimeoutTooLong'
                                                        when 'OKQ02' then 'OutcomeUnknown'
                                                        when 'OKQ03' then 'CredentialsLost'
                                                        else 'TransportError' end,
                              'message', error, 'code', 0)
  $$;
