-- omni_kube.api(): callers commit requests through the autonomous connection, then wait for the
-- worker by blocking on its per-request advisory lock, and read results with a fresh snapshot.

-- A value quoted for a libpq connection string.
create function omni_kube._libpq_quote(value text) returns text
  language sql immutable strict set search_path = pg_catalog, pg_temp
  as $$ select '''' || replace(replace(value, '\', '\\'), '''', '\''') || '''' $$;

-- The autonomous connection's libpq string: the instance setting, else this server's own socket as
-- the installing role. Its session settings are fixed from the first statement on: a search_path
-- nothing can shadow, and no statement logging or activity tracking, because the queries carry
-- credentials as literals.
create function omni_kube._loopback_connstr() returns text
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$
    select coalesce(
      (select value from omni_kube.instance_settings where name = 'loopback_connstr'),
      format('host=%s port=%s dbname=%s user=%s',
             omni_kube._libpq_quote(nullif(split_part(current_setting('unix_socket_directories'), ',', 1), '')),
             current_setting('port'), omni_kube._libpq_quote(current_database()),
             omni_kube._libpq_quote(current_user)))
      || ' application_name=omni_kube_autonomous options='
      || omni_kube._libpq_quote(concat_ws(' ',
           '-c search_path=pg_catalog,pg_temp', '-c track_activities=off',
           '-c log_statement=none', '-c log_min_duration_statement=-1',
           '-c log_min_duration_sample=-1', '-c log_statement_sample_rate=0',
           '-c log_transaction_sample_rate=0', '-c log_min_error_statement=panic',
           '-c synchronous_commit=off', '-c idle_session_timeout=0',
           '-c statement_timeout=0', '-c lock_timeout=0'))
  $$;

-- Runs `query` (which returns one jsonb) in this session's autonomous connection, committing at
-- once. The connection is opened on first use and kept; if it has died (server restart,
-- terminated backend) it is opened again and the query sent once more, which is why every query
-- sent here is idempotent.
-- (dblink is called directly, its schema spelled out when this is created, so that nothing on a
-- caller's search_path can stand in for it; SQL wrappers around it would be parsed and planned
-- again on every call.)
do $do$
begin
  execute format($f$
create function omni_kube._autonomous(query text) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $body$
declare
  connection constant text := 'omni_kube';
begin
  -- The usual case first, with one subtransaction (the exception block) rather than two.
  if coalesce(connection = any(%1$s.dblink_get_connections()), false) then
    begin
      return (select value from %1$s.dblink(connection, query) as t(value jsonb));
    exception when connection_exception then
      perform %1$s.dblink_disconnect(connection);
    end;
  end if;
  -- First use in this session, or the connection died: open it and send the query (again).
  begin
    perform %1$s.dblink_connect(connection, omni_kube._loopback_connstr());
    return (select value from %1$s.dblink(connection, query) as t(value jsonb));
  exception
    when sqlclient_unable_to_establish_sqlconnection or connection_exception then
      if coalesce(connection = any(%1$s.dblink_get_connections()), false) then
        perform %1$s.dblink_disconnect(connection);
      end if;
      raise exception 'omni_kube: the autonomous connection to this database failed'
        using errcode = 'OKA01',
          detail = sqlerrm,
          hint = 'The shim connects to its own database through the server''s unix socket as the installing (superuser) role. If that cannot work here, set a libpq string as that role: insert into omni_kube.instance_settings values (''loopback_connstr'', ''host=... user=...'').';
  end;
end
$body$;
  $f$, (select extnamespace::regnamespace::text from pg_catalog.pg_extension
        where extname = 'dblink'));
end
$do$;
revoke all on function omni_kube._autonomous(text) from public;

-- Runs in the autonomous connection: inserts the requests and their credentials and wakes the
-- worker. Identical GETs of one statement (same digest) share one request: the first one made, by
-- an earlier call or earlier in this batch. Set-based: a batch of a thousand is a few statements, not
-- a thousand. Idempotent through `enqueue_key`: a retry inserts nothing and maps every input again,
-- to its own row (by position) or to the request it shares. Returns the ids, one per input.
create function omni_kube._insert_requests(
  enqueue_key uuid, requested_by name, session_role name, backend_pid int,
  statement_started timestamptz, kind text, methods omni_kube.http_method[], paths text[],
  bodies jsonb[], stream boolean, patch_type text, server text, timeout_ms int,
  use_worker_default boolean, cacert text, client_certificate text, client_private_key text,
  token text, credentials_digest bytea
) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- Its statements take arrays, whose length a generic plan cannot know: left to choose, PostgreSQL
  -- planned them anew on every call (0.5 ms for a single call, eight times the work itself). Their
  -- reads are by index: a plan made while the table looked small must not scan it whole later.
  set plan_cache_mode = force_generic_plan
  set enable_seqscan = off
  as $$
declare
  -- One per input; NULL for anything but an api() GET, which is never shared.
  digests bytea[];
  new_positions int[];
  ids bigint[];
begin
  digests := array(
    select case when methods[i] = 'GET' and kind = 'api' then
             sha256(convert_to(jsonb_build_array(kind, paths[i], stream, server,
                                                 encode(credentials_digest, 'hex'))::text, 'UTF8'))
           end
      from generate_subscripts(paths, 1) i order by i);
  if not exists (select from omni_kube.request r where r.enqueue_key = _insert_requests.enqueue_key) then
    -- Inputs that need a request of their own: not a GET, or the first of its digest in the batch
    -- with no earlier request of the statement to share.
    new_positions := array(
      select x.i from (
        select i, digests[i] as digest, row_number() over (partition by digests[i] order by i) as nth
          from generate_subscripts(paths, 1) i) x
       where x.digest is null
          or (x.nth = 1 and not exists (
                select from omni_kube.request r
                 where r.backend_pid = _insert_requests.backend_pid
                   and r.statement_started = _insert_requests.statement_started
                   and r.digest = x.digest
                   and r.requested_by = _insert_requests.requested_by))
       order by x.i);
    if cardinality(new_positions) > 0 then
      with inserted as (
        insert into omni_kube.request (kind, method, path, body, stream, patch_type, server,
                                       timeout_ms, position, requested_by, session_role,
                                       backend_pid, enqueue_key, statement_started, digest)
          select kind, methods[p], paths[p], bodies[p], stream, patch_type, server, timeout_ms, p,
                 requested_by, session_role, backend_pid, enqueue_key, statement_started, digests[p]
            from unnest(new_positions) p
           order by p
        returning id)
      insert into omni_kube.request_credentials
        select id, use_worker_default, cacert, client_certificate, client_private_key, token
          from inserted;
      perform pg_notify('omni_kube_request', '');
    end if;
  end if;
  -- Each input's request: its own, else the earliest of the statement with its digest.
  select array_agg(coalesce(own.id, shared.id) order by i) into ids
    from generate_subscripts(paths, 1) i
    left join (select r.id, r.position from omni_kube.request r
                where r.enqueue_key = _insert_requests.enqueue_key) own on own.position = i
    left join lateral (
      select r.id from omni_kube.request r
       where own.id is null
         and r.backend_pid = _insert_requests.backend_pid
         and r.statement_started = _insert_requests.statement_started
         and r.digest = digests[i]
         and r.requested_by = _insert_requests.requested_by
       order by r.id limit 1) shared on true;
  return to_jsonb(ids);
end
$$;
revoke all on function omni_kube._insert_requests from public;

-- Is a worker alive (any, or the one given)? Each worker's queue session holds its own lock
-- exclusively and a common one shared: trying to take one tells whether it is held, whatever the
-- caller's snapshot or isolation level, without scanning pg_locks. A lock taken by the try is
-- released at once.
create function omni_kube._worker_alive(worker uuid default null) returns boolean
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  class constant int4 := omni_kube._worker_lock_class();
  key constant int4 := coalesce(omni_kube._worker_lock_key(worker), 0);
begin
  if worker is null then
    if pg_try_advisory_lock(class, 0) then
      perform pg_advisory_unlock(class, 0);
      return false;
    end if;
  elsif pg_try_advisory_lock_shared(class, key) then
    perform pg_advisory_unlock_shared(class, key);
    return false;
  end if;
  return true;
end
$$;

-- Which of `ids` are unfinished (queued or running), keyed by id, with their state and worker (not
-- their responses, which may be large). Read with a fresh snapshot:
-- directly under READ COMMITTED (a new snapshot per statement), through the autonomous connection
-- under REPEATABLE READ and SERIALIZABLE.
-- (The direct read is a static statement planned once per session, not once per call: an index
-- scan, whatever the table's statistics said when it was planned.)
create function omni_kube._unfinished(ids bigint[]) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  set enable_seqscan = off
  set plan_cache_mode = force_generic_plan
  as $$
declare
  result jsonb;
begin
  if current_setting('transaction_isolation') = 'read committed' then
    select coalesce(jsonb_object_agg(r.id, jsonb_build_object('state', r.state,
                                                              'worker_id', r.worker_id)), '{}')
      into result
      from omni_kube.request r where r.id = any(ids) and r.state in ('queued', 'running');
    return result;
  end if;
  return omni_kube._autonomous(format(
    $q$select coalesce(jsonb_object_agg(id, jsonb_build_object('state', state,
                                                                'worker_id', worker_id)), '{}')
         from omni_kube.request where id = any(%L::bigint[]) and state in ('queued', 'running')$q$,
    ids));
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

-- Waits until every request in `ids` has finished.
create function omni_kube._await(ids bigint[], timeout_ms int) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- The caller's lock_timeout must not cut a wait short: each wait lasts at most a second (below).
  set lock_timeout = 1000
  as $$
declare
  lock_class constant int4 := omni_kube._lock_class();
  -- The worker bounds each call by timeout_ms; the margin covers queueing and write-back.
  deadline constant timestamptz := clock_timestamp() + make_interval(secs => timeout_ms / 1000.0 + 5);
  -- (A single call, the usual case, skips the statements that sort and filter arrays.)
  pending bigint[] := case when cardinality(ids) = 1 then ids end;
  -- Each step reads the states of this many pending requests at most, from the head: requests
  -- finish about in queue order, so the rest are read when they come near it. (Reading all of a
  -- large batch at every step made the wait quadratic.)
  window_size constant int := 256;
  unfinished jsonb;
  head bigint;
  head_state text;
  checked int;
  backoff float8 := 0.0005;
  no_worker_since timestamptz;
begin
  if pending is null then
    pending := array(select distinct id from unnest(ids) id order by id);
  end if;
  loop
    -- The worker holds each request's lock until the request's result is committed, so this
    -- returns when the head of the queue is done. Each wait lasts at most a second (lock_timeout),
    -- so that a stuck worker, or anyone else holding the key, only delays the checks below.
    head := pending[1];
    begin
      perform pg_advisory_lock_shared(lock_class, omni_kube._lock_key(head));
      perform pg_advisory_unlock_shared(lock_class, omni_kube._lock_key(head));
    exception when lock_not_available then
      null;
    end;
    checked := least(cardinality(pending), window_size);
    unfinished := omni_kube._unfinished(pending[1:checked]);
    if cardinality(pending) = 1 then
      if unfinished = '{}' then
        pending := '{}';
      end if;
    else
      pending := array(select p from unnest(pending[1:checked]) with ordinality as u(p, n)
                        where unfinished ? p::text order by n)
                 || pending[checked + 1:];
    end if;
    exit when cardinality(pending) = 0;
    head_state := unfinished -> head::text ->> 'state';
    if head_state is null then
      -- Progress: the next wait starts with a short sleep again.
      backoff := 0.0005;
      continue;
    end if;

    -- The head is unfinished though its lock was free: not yet covered by a worker's locks, or
    -- its worker is gone.
    if head_state = 'running'
       and not omni_kube._worker_alive((unfinished -> head::text ->> 'worker_id')::uuid) then
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
  -- Its reads are by id: planned once per session, they must not be sequential scans chosen while
  -- the table was small. (Generic plans: the read of the finished rows took a custom plan, so a
  -- new plan per call, because a generic one cannot tell how many ids an array holds.)
  set enable_seqscan = off
  set plan_cache_mode = force_generic_plan
  as $$
declare
  timeout_ms int;
  patch_type text := nullif(current_setting('omni_kube.patch_type', true), '');
  -- (A composite IS NULL only when all its fields are: compare the fields.)
  use_worker_default boolean := cacert is null and token is null
    and (clientcert).certificate is null and (clientcert).private_key is null;
  ids bigint[];
  states jsonb;
begin
  -- _call can be called directly, so it checks everything itself. Requests are attributed to
  -- requested_by (the caller's current_user, which may be the owner of a SECURITY DEFINER
  -- function): it must be a role allowed to use the bridge. session_user is recorded too.
  if requested_by is null or not pg_has_role(requested_by, 'omni_kube', 'USAGE') then
    raise exception 'omni_kube: role % may not use omni_kube', requested_by
      using errcode = '42501', hint = 'Grant it the omni_kube role.';
  end if;
  if kind is null or kind not in ('api', 'watch') then
    raise exception 'omni_kube: unknown request kind %', kind using errcode = '22023';
  end if;
  if duration_ms is null or duration_ms < 0 or duration_ms > 3600 * 1000 then
    raise exception 'omni_kube: duration % ms is out of range', duration_ms using errcode = '22023';
  end if;
  perform omni_kube._check_paths(paths);
  -- Only https://host[:port]: credentials never travel in clear text, and a path or user part in
  -- the server would change where the call goes.
  if server is not null and server !~ '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$'
                        and server !~ '^https://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?/?$' then
    raise exception 'omni_kube: server "%" must be https://host[:port]', server
      using errcode = '22023',
        hint = 'Give the API server''s URL without a path, e.g. https://kubernetes.default.svc or https://10.0.0.1:6443.';
  end if;
  if array_ndims(methods) > 1 or array_ndims(bodies) > 1
     or methods is null or bodies is null or cardinality(methods) <> cardinality(paths)
     or cardinality(bodies) <> cardinality(paths) then
    raise exception 'omni_kube: one method and one body (or NULL) per path' using errcode = '2202E';
  end if;
  -- (A test of its own, after the one above: array_position() raises on a multidimensional array.)
  if array_position(methods, null) is not null then
    raise exception 'omni_kube: one method per path, none of them NULL' using errcode = '2202E';
  end if;
  -- (Nested, so that api() calls run no statement for it.)
  if kind = 'watch' then
    if exists (
         select from unnest(bodies) b
          where b is null or jsonb_typeof(b) <> 'object'
             or b - 'resourceVersion' - 'timeoutSeconds' <> '{}'
             or jsonb_typeof(b -> 'timeoutSeconds') is distinct from 'number'
             or (b ->> 'timeoutSeconds')::numeric not between 1 and 3600
             or jsonb_typeof(coalesce(b -> 'resourceVersion', '""')) <> 'string') then
      raise exception 'omni_kube: malformed watch request' using errcode = '22023';
    end if;
  end if;

  -- (The exception block, a subtransaction, only when there is a setting to parse.)
  if nullif(current_setting('omni_kube.request_timeout', true), '') is null then
    timeout_ms := 30000;
  else
    begin
      timeout_ms := extract(epoch from current_setting('omni_kube.request_timeout')::interval) * 1000;
    exception when others then
      raise exception 'omni_kube.request_timeout is not an interval: %',
        current_setting('omni_kube.request_timeout', true)
        using errcode = '22023', hint = 'Use a value such as ''30s'' or ''500ms''.';
    end;
  end if;
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
  -- (Never quote credentials in a message.)
  if token !~ '^[\x21-\x7e]+$' then
    raise exception 'omni_kube: the token contains spaces, control or non-ASCII characters'
      using errcode = '22023', hint = 'Pass the bearer token alone, without "Bearer " or a newline.';
  end if;
  if ((clientcert).certificate is null) <> ((clientcert).private_key is null) then
    raise exception 'omni_kube: a client certificate needs both its certificate and its private key'
      using errcode = '22023';
  end if;

  -- The statement's start travels as UTC ISO 8601 text: the caller's DateStyle and TimeZone must
  -- not change how the other session reads it.
  select array_agg(value::bigint order by ordinality) into ids
    from jsonb_array_elements_text(omni_kube._autonomous(format(
      'select omni_kube._insert_requests(%L, %L, %L, %s, %L::timestamp at time zone ''UTC'', %L, %L, %L, %L, %L, %L, %L, %s, %L, %L, %L, %L, %L, %L)',
      gen_random_uuid(), requested_by, session_user, pg_backend_pid(),
      to_char(statement_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
      kind, methods, paths, bodies, stream, patch_type, server, timeout_ms, use_worker_default,
      cacert, clientcert.certificate, clientcert.private_key, token,
      sha256(convert_to(jsonb_build_array(use_worker_default, cacert, clientcert.certificate,
                                          clientcert.private_key, token)::text, 'UTF8')))))
    with ordinality;

  perform omni_kube._await(ids, timeout_ms);
  -- Finished requests no longer change: read them once, now, with a fresh snapshot (responses can
  -- be megabytes; the wait above read only which were unfinished).
  if current_setting('transaction_isolation') = 'read committed' then
    return query
      select u.id, r.state::text, r.status, r.response, r.error
        from unnest(ids) with ordinality as u(id, n)
        left join omni_kube.request r on r.id = u.id
       order by u.n;
    return;
  end if;
  states := omni_kube._autonomous(format(
    $q$select coalesce(jsonb_object_agg(id, jsonb_build_object('state', state, 'status', status,
                                                                'response', response, 'error', error)), '{}')
         from omni_kube.request where id = any(%L::bigint[])$q$,
    ids));
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
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$
    select jsonb_build_object('kind', 'Status', 'apiVersion', 'v1', 'status', 'Failure',
                              'reason', 'TransportError', 'message', error, 'code', 0)
  $$;

create function omni_kube._check_paths(paths text[]) returns void
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
declare
  p text;
begin
  if paths is null then
    raise exception 'omni_kube: paths must not be NULL' using errcode = '22004';
  end if;
  if array_ndims(paths) > 1 then
    raise exception 'omni_kube: paths must be a one-dimensional array, got % dimensions',
      array_ndims(paths) using errcode = '2202E';
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

-- A setting's value, NULL when unset or empty: the defaults of api() and watch(). Evaluated with
-- the caller's rights, in the caller's statement: no SET clause, so that they are inlined there
-- rather than parsed and planned again in every transaction.
create function omni_kube._setting(name text) returns text
  language sql stable parallel safe
  as $$ select nullif(pg_catalog.current_setting(name, true), '') $$;

-- The client certificate from the omni_kube.clientcert and omni_kube.client_private_key settings.
create function omni_kube._setting_clientcert() returns omni_kube.client_certificate
  language sql stable parallel safe
  as $$
    select case when omni_kube._setting('omni_kube.clientcert') is not null
                  or omni_kube._setting('omni_kube.client_private_key') is not null
                then row(omni_kube._setting('omni_kube.clientcert'),
                         omni_kube._setting('omni_kube.client_private_key'))::omni_kube.client_certificate
           end
  $$;

-- Raises the error of a single call (api() or watch()) that did not get an answer below 400.
create function omni_kube._raise_for(state text, status int2, response jsonb, error text, call text)
  returns void
  language plpgsql stable set search_path = pg_catalog, pg_temp
  as $$
begin
  if state = 'done' then
    raise exception '%', coalesce(response ->> 'reason', 'HTTP ' || status)
      using errcode = 'OK' || lpad(status::text, 3, '0'),
        detail = coalesce(response ->> 'message', response #>> '{}', ''),
        hint = format('%s answered %s', call, status);
  end if;
  if state = 'failed' then
    raise exception 'omni_kube: %', error using errcode = 'OKT01';
  end if;
  raise exception 'omni_kube: request %: %', state, error using errcode = 'OKW02';
end
$$;

-- Single call: the response body; a status of 400 or more raises.
create function omni_kube.api(
  path text,
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token'),
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
  -- _call checks the path (and everything else).
  select * into result from omni_kube._call(current_user, 'api', array[path], array[method],
                                            array[body], stream, server, cacert, clientcert, token);
  if result.state = 'done' and result.status < 400 then
    return result.response;
  end if;
  perform omni_kube._raise_for(result.state, result.status, result.response, result.error,
                               format('%s %s', method, path));
  return null; -- not reached: _raise_for raises
end
$$;

-- Batch: one row per path, in input order; the calls run in parallel.
create function omni_kube.api(
  paths text[],
  server text default omni_kube._setting('omni_kube.server'),
  cacert text default omni_kube._setting('omni_kube.cacert'),
  clientcert omni_kube.client_certificate default omni_kube._setting_clientcert(),
  token text default omni_kube._setting('omni_kube.token'),
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
   where exists (select from pg_roles r
                  where r.rolname = requested_by and pg_has_role(current_user, r.oid, 'MEMBER'));
grant select on omni_kube.requests to omni_kube;

create view omni_kube.worker_status as
  select id, host, pid, started_at, last_seen, omni_kube._worker_alive(id) as alive
    from omni_kube.workers;
grant select on omni_kube.worker_status to omni_kube;

grant select on omni_kube.workers to omni_kube;

-- Internal functions run only inside omni_kube._call (as the installing role) or in the worker.
grant execute on function omni_kube._worker_alive(uuid) to omni_kube;
revoke all on function omni_kube._loopback_connstr(),
  omni_kube._unfinished(bigint[]), omni_kube._abandon(bigint[], omni_kube.request_state, text),
  omni_kube._await(bigint[], int) from public;

-- A response body as jsonb: JSON when it parses, else a JSON string (pod logs, /healthz); NULL
-- when empty.
create function omni_kube._response_jsonb(body text, is_json boolean) returns jsonb
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  if body is null or body = '' then
    return null;
  end if;
  if is_json then
    begin
      return body::jsonb;
    exception when others then
      -- Not valid JSON after all (or not storable as jsonb, such as \u0000): keep it as text.
      return to_jsonb(body);
    end;
  end if;
  return to_jsonb(body);
end
$$;
