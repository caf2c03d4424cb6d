-- Enqueues calls for the session's role and waits for them. One row per input, in input order.
create or replace function omni_kube._call(
  kind text, paths text[], methods omni_kube.http_method[], bodies jsonb[],
  stream boolean, server text, cacert text, clientcert omni_kube.client_certificate, token text,
  -- Added to omni_kube.request_timeout: how long the call itself is meant to last (a watch).
  duration_ms int default 0,
  -- The named cluster of each path (NULL: server and credentials above, or the worker's own).
  clusters text[] default null
) returns table (id bigint, state text, status int2, response jsonb, error text,
                error_code text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  -- Its reads are by id: planned once per session, they must not be sequential scans chosen while
  -- the table was small. (Generic plans: the read of the finished rows took a custom plan, so a
  -- new plan per call, because a generic one cannot tell how many ids an array holds.)
  set enable_seqscan = off
  set plan_cache_mode = force_generic_plan
  as $$
declare
  -- Who asks: the session's role (SET ROLE's, else the login's), which a member cannot pretend to
  -- be, since SET ROLE takes membership. Never a parameter: members may call _call directly.
  requested_by constant name := case when current_setting('role') = 'none' then session_user
                                     else current_setting('role') end;
  timeout_ms int;
  patch_type text;
  -- (A composite IS NULL only when all its fields are: compare the fields.)
  use_worker_default boolean := cacert is null and token is null
    and (clientcert).certificate is null and (clientcert).private_key is null;
  -- The ids _insert_requests returned, one per path.
  enqueued jsonb;
  ids bigint[];
  states jsonb;
  -- Names this call's requests, for a cancellation that comes before their ids are known.
  enqueue_key constant uuid := gen_random_uuid();
  read_committed constant boolean := current_setting('transaction_isolation') = 'read committed';
  -- A single call's request, read once it had finished (all NULL: not read, or not finished).
  answer_state text;
  answer_status int2;
  answer_response jsonb;
  answer_error text;
  answer_error_code text;
begin
  -- _call can be called directly, so it checks everything itself, starting with the role: it must
  -- be allowed to use the bridge. (The session_role column keeps session_user.)
  if not pg_has_role(requested_by, 'omni_kube', 'USAGE') then
    raise exception 'omni_kube: role % may not use omni_kube', requested_by
      using errcode = '42501', hint = 'Grant it the omni_kube role.';
  end if;
  if kind is null or not omni_kube._protocol() -> 'kinds' ? kind then
    raise exception 'omni_kube: unknown request kind %', kind using errcode = '22023';
  end if;
  if duration_ms is null or duration_ms < 0
     or duration_ms > (omni_kube._protocol() ->> 'max_duration_seconds')::int * 1000 then
    raise exception 'omni_kube: duration % ms is out of range', duration_ms using errcode = '22023';
  end if;
  -- (A single good path, the usual input, is told by an inlined test, without a call.)
  if not coalesce(array_ndims(paths) = 1 and cardinality(paths) = 1
                  and omni_kube._path_problem(paths[1]) is null, false) then
    perform omni_kube._check_paths(paths);
  end if;
  if clusters is not null then
    perform omni_kube._check_clusters(requested_by, clusters, cardinality(paths), server, cacert,
                                      clientcert, token);
  end if;
  if server is not null then
    if not omni_kube._server_url_ok(server) then
      perform omni_kube._check_server_url(server);
    end if;
    perform omni_kube._check_explicit_server(server);
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
             or (b ->> 'timeoutSeconds')::numeric
                  not between 1 and (omni_kube._protocol() ->> 'max_duration_seconds')::numeric
             or jsonb_typeof(coalesce(b -> 'resourceVersion', '""')) <> 'string') then
      raise exception 'omni_kube: malformed watch request' using errcode = '22023';
    end if;
  end if;

  timeout_ms := omni_kube._request_timeout_ms() + duration_ms;
  patch_type := omni_kube._patch_type();
  if not omni_kube._worker_locked() then
    raise exception 'omni_kube: no worker is running'
      using errcode = 'OKW01',
        hint = 'Start one: deno task start (see the README), with DATABASE_URL pointing at this database.';
  end if;
  if not omni_kube._credentials_ok(token, clientcert) then
    perform omni_kube._check_credentials(token, clientcert);
  end if;

  begin
    -- The statement's start travels as UTC ISO 8601 text: the caller's DateStyle and TimeZone
    -- must not change how the other session reads it.
    enqueued := omni_kube._autonomous(format(
        'select omni_kube._insert_requests(%L, %L, %L, %s, %L::timestamp at time zone ''UTC'', %L, %L, %L, %L, %L, %L, %L, %s, %L, %L, %L, %L, %L, %L, %L)',
        enqueue_key, requested_by, session_user, pg_backend_pid(),
        to_char(statement_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        kind, methods, paths, bodies, stream, patch_type, server, timeout_ms, use_worker_default,
        cacert, clientcert.certificate, clientcert.private_key, token,
        sha256(convert_to(jsonb_build_array(use_worker_default, cacert, clientcert.certificate,
                                            clientcert.private_key, token)::text, 'UTF8')),
        clusters));
    if cardinality(paths) = 1 then
      ids := array[(enqueued ->> 0)::bigint];
      -- The usual call: one request, whose first wait on its lock ends as its result commits. The
      -- row read then is the call's answer, under READ COMMITTED (a fresh snapshot per statement),
      -- and _await, made for long waits and batches, is not needed.
      if read_committed then
        if omni_kube._await_first(ids[1]) then
          select r.state, r.status, r.response, r.error, r.error_code
            into answer_state, answer_status, answer_response, answer_error, answer_error_code
            from omni_kube.request r
           where r.id = ids[1] and r.state not in ('queued', 'running');
        end if;
      end if;
    else
      ids := array(select value::bigint from jsonb_array_elements_text(enqueued) with ordinality
                    order by ordinality);
    end if;
    if answer_state is null then
      perform omni_kube._await(ids, timeout_ms);
    end if;
  exception
    -- statement_timeout, pg_cancel_backend(), at any moment after the requests were sent: every
    -- one of them still unfinished is cancelled (queued ones are never sent; the worker stops the
    -- running ones), found by the enqueue's key.
    when query_canceled then
      perform omni_kube._autonomous(format(
        $q$select omni_kube._cancel_requests(
             array(select id from omni_kube.request where enqueue_key = %L), %L)$q$,
        enqueue_key, 'the caller cancelled the statement'));
      raise;
  end;
  -- Finished requests no longer change: read them once, now, with a fresh snapshot (responses can
  -- be megabytes; the wait above read only which were unfinished).
  if answer_state is not null then
    return query select ids[1], answer_state, answer_status, answer_response, answer_error,
                        answer_error_code;
    return;
  end if;
  if read_committed then
    return query
      select u.id, r.state::text, r.status, r.response, r.error, r.error_code
        from unnest(ids) with ordinality as u(id, n)
        left join omni_kube.request r on r.id = u.id
       order by u.n;
    return;
  end if;
  states := omni_kube._autonomous(format(
    $q$select coalesce(jsonb_object_agg(id, jsonb_build_object('state', state, 'status', status,
                                                                'response', response, 'error', error,
                                                                'error_code', error_code)), '{}')
         from omni_kube.request where id = any(%L::bigint[])$q$,
    ids));
  return query
    select r.id, s ->> 'state', (s ->> 'status')::int2, s -> 'response', s ->> 'error',
           s ->> 'error_code'
      from unnest(ids) with ordinality as r(id, n)
      cross join lateral (select states -> r.id::text) as x(s)
     order by r.n;
end
$$;
revoke all on function omni_kube._call(text, text[], omni_kube.http_method[], jsonb[], boolean,
  text, text, omni_kube.client_certificate, text, int, text[]) from public;
grant execute on function omni_kube._call(text, text[], omni_kube.http_method[], jsonb[], boolean,
  text, text, omni_kube.client_certificate, text, int, text[]) to omni_kube;
