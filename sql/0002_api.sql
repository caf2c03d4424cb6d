-- omni_kube.api(): callers commit requests through the autonomous connection, then wait for the
-- worker by blocking on its per-request advisory lock, and read results with a fresh snapshot.

-- The autonomous connection's libpq string: instance setting, else this server's own socket.
create function omni_kube._loopback_connstr() returns text
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$
    select coalesce(
      (select value from omni_kube.instance_settings where name = 'loopback_connstr'),
      format('host=%s port=%s dbname=%s user=%s application_name=omni_kube_autonomous',
             nullif(split_part(current_setting('unix_socket_directories'), ',', 1), ''),
             current_setting('port'), quote_ident(current_database()), quote_ident(current_user)))
  $$;

-- Runs `query` (which returns one jsonb) in this session's autonomous connection, committing at
-- once. The connection is opened on first use and kept; statement logging is off in it because the
-- queries carry credentials as literals.
create function omni_kube._autonomous(query text) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  connection constant text := 'omni_kube';
begin
  if not coalesce(connection = any(omni_kube._autonomous_connections()), false) then
    perform omni_kube._autonomous_connect(connection, omni_kube._loopback_connstr());
    perform omni_kube._autonomous_query(connection,
      $q$select to_jsonb(set_config('log_statement', 'none', false) ||
                set_config('log_min_duration_statement', '-1', false) ||
                set_config('log_min_error_statement', 'panic', false) ||
                set_config('synchronous_commit', 'off', false))$q$);
  end if;
  return omni_kube._autonomous_query(connection, query);
exception
  when sqlclient_unable_to_establish_sqlconnection or connection_exception then
    raise exception 'omni_kube: the autonomous connection to this database failed'
      using errcode = 'OKA01',
        detail = sqlerrm,
        hint = 'Set a working libpq string as the installing role: insert into omni_kube.instance_settings values (''loopback_connstr'', ''host=... user=...'')';
end
$$;
revoke all on function omni_kube._autonomous(text) from public;

-- Runs in the autonomous connection: inserts the requests and their credentials and wakes the
-- worker. Identical GETs of one statement (same digest) share one request. Returns the ids.
create function omni_kube._insert_requests(
  requested_by name, backend_pid int, statement_started timestamptz, kind text,
  methods omni_kube.http_method[], paths text[], bodies jsonb[], stream boolean, patch_type text,
  server text, timeout_ms int, use_worker_default boolean,
  cacert text, client_certificate text, client_private_key text, token text,
  credentials_digest bytea
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  ids bigint[] := '{}';
  request_id bigint;
  call_digest bytea;
  batch bigint;
begin
  for i in 1 .. cardinality(paths) loop
    call_digest := null;
    request_id := null;
    if methods[i] = 'GET' and kind = 'api' then
      call_digest := sha256(convert_to(
        jsonb_build_array(kind, paths[i], stream, server, encode(credentials_digest, 'hex'))::text,
        'UTF8'));
      select r.id into request_id from omni_kube.request r
        where r.backend_pid = _insert_requests.backend_pid
          and r.statement_started = _insert_requests.statement_started
          and r.digest = call_digest
          and r.requested_by = _insert_requests.requested_by;
    end if;
    if request_id is null then
      insert into omni_kube.request (kind, method, path, body, stream, patch_type, server, timeout_ms,
                                     batch_id, position, requested_by, backend_pid,
                                     statement_started, digest)
        values (kind, methods[i], paths[i], bodies[i], stream, patch_type, server, timeout_ms, batch, i,
                requested_by, backend_pid, statement_started, call_digest)
        returning id into request_id;
      batch := coalesce(batch, request_id);
      insert into omni_kube.request_credentials
        values (request_id, use_worker_default, cacert, client_certificate, client_private_key, token);
    end if;
    ids := ids || request_id;
  end loop;
  perform pg_notify('omni_kube_request', '');
  return to_jsonb(ids);
end
$$;
revoke all on function omni_kube._insert_requests from public;

-- Is a worker alive: its lock session connected and its heartbeat fresh. Callers ask this in the
-- middle of long statements, so neither now() (frozen at transaction start) nor the cached
-- pg_stat_activity snapshot will do.
create function omni_kube._worker_alive(worker uuid default null) returns boolean
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform pg_stat_clear_snapshot();
  return exists (
    select from omni_kube.workers w
     where (worker is null or w.id = worker)
       and w.last_seen > clock_timestamp() - (select value::interval from omni_kube.instance_settings
                                               where name = 'worker_stale_after')
       and exists (select from pg_stat_activity a where a.pid = w.lock_backend_pid));
end
$$;

-- The state of requests, read with a fresh snapshot: directly under READ COMMITTED (a new snapshot
-- per statement), through the autonomous connection under REPEATABLE READ and SERIALIZABLE.
create function omni_kube._request_states(ids bigint[]) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  query constant text := format(
    $q$select coalesce(jsonb_object_agg(id, jsonb_build_object(
         'state', state, 'status', status, 'response', response, 'error', error,
         'worker_id', worker_id)), '{}') from omni_kube.request where id = any(%L::bigint[])$q$,
    ids);
  result jsonb;
begin
  if current_setting('transaction_isolation') = 'read committed' then
    execute query into result;
    return result;
  end if;
  return omni_kube._autonomous(query);
end
$$;

-- Marks unfinished requests as cancelled or failed, autonomously, and tells the worker running them
-- to stop (NOTIFY omni_kube_cancel with the ids).
create function omni_kube._abandon(ids bigint[], new_state omni_kube.request_state, reason text)
  returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._autonomous(format(
    $q$with abandoned as (
         update omni_kube.request set state = %L, error = %L, finished_at = clock_timestamp()
          where id = any(%L::bigint[]) and state in ('queued', 'running') returning id),
       forgotten as (delete from omni_kube.request_credentials where request_id in (select id from abandoned))
       select to_jsonb(pg_notify('omni_kube_cancel', string_agg(id::text, ','))) from abandoned$q$,
    new_state, reason, ids));
end
$$;

-- Waits until every request in `ids` has finished; returns their states keyed by id.
create function omni_kube._await(ids bigint[], timeout_ms int) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  lock_class constant int4 := omni_kube._lock_class();
  -- The worker bounds each call by timeout_ms; the margin covers queueing and write-back.
  deadline constant timestamptz := clock_timestamp() + make_interval(secs => timeout_ms / 1000.0 + 5);
  pending bigint[] := array(select distinct unnest(ids));
  states jsonb := '{}';
  fresh jsonb;
  request jsonb;
  head bigint;
  backoff float8 := 0.0005;
  no_worker_since timestamptz;
begin
  loop
    fresh := omni_kube._request_states(pending);
    states := states || fresh;
    pending := array(select p from unnest(pending) p
                      where (fresh -> p::text ->> 'state') in ('queued', 'running'));
    exit when cardinality(pending) = 0;

    -- The worker holds each request's lock until the request's result is committed.
    head := pending[1];
    perform pg_advisory_lock_shared(lock_class, omni_kube._lock_key(head));
    perform pg_advisory_unlock_shared(lock_class, omni_kube._lock_key(head));
    request := omni_kube._request_states(array[head]) -> head::text;
    continue when request ->> 'state' not in ('queued', 'running');

    -- The lock was free and the request unfinished: not yet covered by a worker's locks, or its
    -- worker is gone.
    if request ->> 'state' = 'running' and not omni_kube._worker_alive((request ->> 'worker_id')::uuid) then
      perform omni_kube._abandon(array[head], 'cancelled',
        'the worker running this request stopped before it finished; it was not retried');
      continue;
    end if;
    if not omni_kube._worker_alive() then
      no_worker_since := coalesce(no_worker_since, clock_timestamp());
      if clock_timestamp() - no_worker_since > interval '3 seconds' then
        perform omni_kube._abandon(pending, 'cancelled', 'no worker was alive to run it');
        raise exception 'omni_kube: no worker is running'
          using errcode = 'OKW01',
            hint = 'Start one: deno task start (see the README), with DATABASE_URL pointing at this database.';
      end if;
    else
      no_worker_since := null;
    end if;
    if clock_timestamp() > deadline then
      perform omni_kube._abandon(pending, 'cancelled', 'timed out waiting for a worker');
      raise exception 'omni_kube: timed out after % ms waiting for the worker', timeout_ms
        using errcode = 'OKT02',
          hint = 'The worker may be overloaded; raise omni_kube.request_timeout or add workers.';
    end if;
    perform pg_sleep(backoff);
    backoff := least(backoff * 2, 0.05);
  end loop;
  return states;
exception
  -- statement_timeout, pg_cancel_backend(): the worker stops the call, nothing is left running.
  when query_canceled then
    perform omni_kube._abandon(pending, 'cancelled', 'the caller cancelled the statement');
    raise;
end
$$;

-- Enqueues calls for the current role and waits for them. One row per input, in input order.
create function omni_kube._call(
  requested_by name, kind text, paths text[], methods omni_kube.http_method[], bodies jsonb[],
  stream boolean, server text, cacert text, clientcert omni_kube.client_certificate, token text,
  -- Added to omni_kube.request_timeout: how long the call itself is meant to last (a watch).
  duration_ms int default 0
) returns table (id bigint, state text, status int2, response jsonb, error text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  timeout_ms int;
  patch_type text := nullif(current_setting('omni_kube.patch_type', true), '');
  use_worker_default boolean := cacert is null and clientcert is null and token is null;
  ids bigint[];
  states jsonb;
begin
  -- A caller may only act as a role it could SET ROLE to.
  if not pg_has_role(session_user, requested_by, 'MEMBER') then
    raise exception 'omni_kube: % may not make calls as %', session_user, requested_by
      using errcode = '42501';
  end if;
  begin
    timeout_ms := extract(epoch from coalesce(
      nullif(current_setting('omni_kube.request_timeout', true), ''), '30s')::interval) * 1000;
  exception when others then
    raise exception 'omni_kube.request_timeout is not an interval: %',
      current_setting('omni_kube.request_timeout', true)
      using errcode = '22023', hint = 'Use a value such as ''30s'' or ''500ms''.';
  end;
  if timeout_ms <= 0 then
    raise exception 'omni_kube.request_timeout must be positive, got %',
      current_setting('omni_kube.request_timeout', true) using errcode = '22023';
  end if;
  timeout_ms := timeout_ms + duration_ms;
  if patch_type not in ('merge', 'json', 'strategic', 'apply') then
    raise exception 'omni_kube.patch_type must be merge, json, strategic or apply, got %', patch_type
      using errcode = '22023';
  end if;
  if not omni_kube._worker_alive() then
    raise exception 'omni_kube: no worker is running'
      using errcode = 'OKW01',
        hint = 'Start one: deno task start (see the README), with DATABASE_URL pointing at this database.';
  end if;
  if clientcert is not null and (clientcert.certificate is null) <> (clientcert.private_key is null) then
    raise exception 'omni_kube: a client certificate needs both its certificate and its private key'
      using errcode = '22023';
  end if;

  select array_agg(value::bigint order by ordinality) into ids
    from jsonb_array_elements_text(omni_kube._autonomous(format(
      'select omni_kube._insert_requests(%L, %s, %L, %L, %L, %L, %L, %L, %L, %L, %s, %L, %L, %L, %L, %L, %L)',
      requested_by, pg_backend_pid(), statement_timestamp(), kind, methods, paths, bodies, stream,
      patch_type, server, timeout_ms, use_worker_default, cacert, clientcert.certificate, clientcert.private_key,
      token, sha256(convert_to(concat_ws(E'\n', cacert, clientcert.certificate, token), 'UTF8')))))
    with ordinality;

  states := omni_kube._await(ids, timeout_ms);
  return query
    select r.id, s ->> 'state', (s ->> 'status')::int2, s -> 'response', s ->> 'error'
      from unnest(ids) with ordinality as r(id, n)
      cross join lateral (select states -> r.id::text) as x(s)
     order by r.n;
end
$$;
revoke all on function omni_kube._call from public;
grant execute on function omni_kube._call to omni_kube;

-- The Kubernetes Status of a failed call, for the batch form's rows.
create function omni_kube._transport_status(error text) returns jsonb
  language sql immutable
  as $$
    select jsonb_build_object('kind', 'Status', 'apiVersion', 'v1', 'status', 'Failure',
                              'reason', 'TransportError', 'message', error, 'code', 0)
  $$;

create function omni_kube._check_paths(paths text[]) returns void
  language plpgsql immutable
  as $$
declare
  p text;
begin
  if paths is null then
    raise exception 'omni_kube: paths must not be NULL' using errcode = '22004';
  end if;
  foreach p in array paths loop
    if p is null then
      raise exception 'omni_kube: path must not be NULL' using errcode = '22004';
    end if;
    if left(p, 1) <> '/' then
      raise exception 'omni_kube: path "%" must start with /', p
        using errcode = '22023', hint = 'Give the API path, e.g. /api/v1/namespaces.';
    end if;
    if p ~ '[\s\x00-\x1f\x7f]' then
      raise exception 'omni_kube: path "%" contains whitespace or control characters', p
        using errcode = '22023', hint = 'URL-encode them, e.g. %%20 for a space.';
    end if;
    if p ~ '(^|/)\.\.?(/|\?|$)' then
      raise exception 'omni_kube: path "%" contains . or .. segments', p using errcode = '22023';
    end if;
  end loop;
end
$$;

-- Single call: the response body; a status of 400 or more raises.
create function omni_kube.api(
  path text,
  server text default nullif(current_setting('omni_kube.server', true), ''),
  cacert text default nullif(current_setting('omni_kube.cacert', true), ''),
  clientcert omni_kube.client_certificate default
    case when nullif(current_setting('omni_kube.clientcert', true), '') is not null
           or nullif(current_setting('omni_kube.client_private_key', true), '') is not null
         then row(nullif(current_setting('omni_kube.clientcert', true), ''),
                  nullif(current_setting('omni_kube.client_private_key', true), ''))::omni_kube.client_certificate
    end,
  token text default nullif(current_setting('omni_kube.token', true), ''),
  method omni_kube.http_method default 'GET',
  body jsonb default null,
  stream boolean default false
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  result record;
begin
  perform omni_kube._check_paths(array[path]);
  select * into result from omni_kube._call(current_user, 'api', array[path], array[method],
                                            array[body], stream, server, cacert, clientcert, token);
  if result.state = 'done' and result.status < 400 then
    return result.response;
  end if;
  if result.state = 'done' then
    raise exception '%', coalesce(result.response ->> 'reason', 'HTTP ' || result.status)
      using errcode = 'OK' || lpad(result.status::text, 3, '0'),
        detail = coalesce(result.response ->> 'message', result.response #>> '{}', ''),
        hint = format('%s %s answered %s', method, path, result.status);
  end if;
  if result.state = 'failed' then
    raise exception 'omni_kube: %', result.error using errcode = 'OKT01';
  end if;
  raise exception 'omni_kube: request %: %', result.state, result.error using errcode = 'OKW02';
end
$$;

-- Batch: one row per path, in input order; the calls run in parallel.
create function omni_kube.api(
  paths text[],
  server text default nullif(current_setting('omni_kube.server', true), ''),
  cacert text default nullif(current_setting('omni_kube.cacert', true), ''),
  clientcert omni_kube.client_certificate default
    case when nullif(current_setting('omni_kube.clientcert', true), '') is not null
           or nullif(current_setting('omni_kube.client_private_key', true), '') is not null
         then row(nullif(current_setting('omni_kube.clientcert', true), ''),
                  nullif(current_setting('omni_kube.client_private_key', true), ''))::omni_kube.client_certificate
    end,
  token text default nullif(current_setting('omni_kube.token', true), ''),
  methods omni_kube.http_method[] default null,
  bodies jsonb[] default null,
  stream boolean default false
) returns table (response jsonb, status int2)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  perform omni_kube._check_paths(paths);
  if cardinality(paths) = 0 then
    return;
  end if;
  if methods is not null and cardinality(methods) <> cardinality(paths) then
    raise exception 'omni_kube: % methods for % paths', cardinality(methods), cardinality(paths)
      using errcode = '2202E', hint = 'Give one method per path, or none for GET everywhere.';
  end if;
  if bodies is not null and cardinality(bodies) <> cardinality(paths) then
    raise exception 'omni_kube: % bodies for % paths', cardinality(bodies), cardinality(paths)
      using errcode = '2202E', hint = 'Give one body (or NULL) per path, or none.';
  end if;
  return query
    select case when c.state = 'done' then c.response
                else omni_kube._transport_status(c.error) end,
           case when c.state = 'done' then c.status else 0::int2 end
      from omni_kube._call(current_user, 'api', paths,
                           coalesce(methods, array_fill('GET'::omni_kube.http_method, array[cardinality(paths)])),
                           coalesce(bodies, array_fill(null::jsonb, array[cardinality(paths)])),
                           stream, server, cacert, clientcert, token) c;
end
$$;

grant execute on function omni_kube.api(text, text, text, omni_kube.client_certificate, text,
  omni_kube.http_method, jsonb, boolean) to omni_kube;
grant execute on function omni_kube.api(text[], text, text, omni_kube.client_certificate, text,
  omni_kube.http_method[], jsonb[], boolean) to omni_kube;

-- Inspection: each role sees only its own requests; never credentials.
create view omni_kube.requests with (security_barrier) as
  select id, kind, method, path, state, status, error, requested_by, worker_id, created_at,
         claimed_at, finished_at, finished_at - created_at as duration
    from omni_kube.request
   where pg_has_role(current_user, requested_by, 'MEMBER');
grant select on omni_kube.requests to omni_kube;

create view omni_kube.worker_status as
  select id, host, pid, started_at, last_seen, omni_kube._worker_alive(id) as alive
    from omni_kube.workers;
grant select on omni_kube.worker_status to omni_kube;

grant select on omni_kube.workers to omni_kube;

-- Internal functions run only inside omni_kube._call (as the installing role) or in the worker.
revoke all on function omni_kube._loopback_connstr(), omni_kube._worker_alive(uuid),
  omni_kube._request_states(bigint[]), omni_kube._abandon(bigint[], omni_kube.request_state, text),
  omni_kube._await(bigint[], int) from public;

-- A response body as jsonb: JSON when it parses, else a JSON string (pod logs, /healthz); NULL
-- when empty.
create function omni_kube._response_jsonb(body text, is_json boolean) returns jsonb
  language plpgsql immutable
  as $$
begin
  if body is null or body = '' then
    return null;
  end if;
  if is_json then
    begin
      return body::jsonb;
    exception when invalid_text_representation then
      return to_jsonb(body);
    end;
  end if;
  return to_jsonb(body);
end
$$;
