-- Asynchronous call: the request is written in the caller's transaction and sent by a worker only
-- once that commits (never if it rolls back); returns its id at once, for result() and results().
-- A worker claims it from omni_kube.async_request, in slots of their own (_async_claim).
create or replace function omni_kube.api_async(
  path text,
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token'),
  method omni_kube.http_method default 'GET',
  body jsonb default null,
  stream boolean default false,
  retries int default 0,
  on_done regprocedure default null
) returns bigint
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  -- Who asks: the session's role (omni_kube._session_role(), spelled out: this runs per call).
  requested_by constant name := case when current_setting('role') = 'none' then session_user
                                     else current_setting('role') end;
  patch_type constant text := omni_kube._patch_type();
  has_secret constant boolean := token is not null or (clientcert).certificate is not null;
  request_id bigint;
begin
  if not pg_has_role(requested_by, 'omni_kube', 'USAGE') then
    raise exception 'omni_kube: role % may not use omni_kube', requested_by
      using errcode = '42501', hint = 'Grant it the omni_kube role.';
  end if;
  -- Called once per row, often thousands of times in a statement: a good path, server and no
  -- credentials are told by inlined tests, and only a bad input (or a setting that restricts it)
  -- costs a function call.
  if omni_kube._path_problem(path) is not null then
    perform omni_kube._check_paths(array[path]);
  end if;
  if method is null then
    raise exception 'omni_kube: method must not be NULL' using errcode = '22004';
  end if;
  if server is not null then
    if not omni_kube._server_url_ok(server) then
      perform omni_kube._check_server_url(server);
    end if;
    -- The workers' setting is read in full only when one of them restricts it. (_call calls
    -- _check_explicit_server at once: its plans turn sequential scans off, and that function reads
    -- the workers with settings of its own.)
    if exists (select from omni_kube.workers w where coalesce(w.explicit_servers, 'any') <> 'any') then
      perform omni_kube._check_explicit_server(server);
    end if;
  end if;
  if not omni_kube._credentials_ok(token, clientcert) then
    perform omni_kube._check_credentials(token, clientcert);
  end if;
  if retries is null or retries < 0 then
    raise exception 'omni_kube: retries must be 0 or more, got %', coalesce(retries::text, 'NULL')
      using errcode = '22023';
  end if;
  if retries > 0 and not omni_kube._idempotent(method, patch_type) then
    raise exception 'omni_kube: a % is never sent twice, so it cannot be retried', method
      || case when method = 'PATCH' then ' other than a server-side apply' else '' end
      using errcode = '22023',
        hint = 'Retries are for GET, HEAD, PUT, DELETE and server-side apply PATCH (omni_kube.patch_type = apply). Pass retries => 0.';
  end if;
  if on_done is not null then
    perform omni_kube._check_callback(on_done, requested_by);
  end if;
  insert into omni_kube.async_request (method, path, body, stream, patch_type, server, timeout_ms,
                                       requested_by, use_worker_default, cacert, has_secret,
                                       retries, on_done)
  values (method, path, body, stream, patch_type, server, omni_kube._request_timeout_ms(),
          requested_by, cacert is null and not has_secret, cacert, has_secret, retries, on_done)
  returning id into request_id;
  if has_secret then
    insert into omni_kube.async_credentials
    values (request_id, (clientcert).certificate, (clientcert).private_key, token);
  end if;
  -- Sent at commit, once per transaction however many requests it made.
  perform pg_notify('omni_kube_async', '');
  return request_id;
end
$$;
revoke all on function omni_kube.api_async(text, text, text, omni_kube.client_certificate, text,
  omni_kube.http_method, jsonb, boolean, int, regprocedure) from public;
grant execute on function omni_kube.api_async(text, text, text, omni_kube.client_certificate, text,
  omni_kube.http_method, jsonb, boolean, int, regprocedure) to omni_kube;
