-- Reading async requests' results: result() for one, results() for many.

-- The rows of `ids` that exist, keyed by id, read with a fresh snapshot (directly under READ
-- COMMITTED, through the autonomous connection under REPEATABLE READ and SERIALIZABLE, as
-- _unfinished reads): `with_responses` adds their responses, which may be large.
create or replace function omni_kube._async_rows(ids bigint[], with_responses boolean) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  query constant text := $q$
    select coalesce(jsonb_object_agg(r.id, jsonb_build_object(
             'state', r.state, 'status', r.status, 'error', r.error, 'error_code', r.error_code,
             'requested_by', r.requested_by, 'call', r.method || ' ' || r.path)
             || case when $2 then jsonb_build_object('response', r.response) else '{}' end), '{}')
      from omni_kube.async_request r where r.id = any($1)$q$;
  rows jsonb;
begin
  if current_setting('transaction_isolation') = 'read committed' then
    execute query into rows using ids, with_responses;
    return rows;
  end if;
  return omni_kube._autonomous(format(
    'select (%s) from (values (%L::bigint[], %L::boolean)) as p(ids, with_responses)',
    replace(replace(query, '$1', 'p.ids'), '$2', 'p.with_responses'), ids, with_responses));
end
$$;
revoke all on function omni_kube._async_rows(bigint[], boolean) from public;

-- Checks that every one of `ids` is a request the session's role (or a role it is a member of)
-- made and committed, then waits until all are finished or `timeout` seconds have passed (0: not
-- at all); returns their rows as _async_rows does, with their responses.
create or replace function omni_kube._async_wait(ids bigint[], timeout int) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  member constant name := omni_kube._session_role();
  deadline constant timestamptz := clock_timestamp() + make_interval(secs => timeout);
  rows jsonb;
  missing bigint;
  pause float8 := 0.001;
begin
  if ids is null or array_position(ids, null) is not null then
    raise exception 'omni_kube: request ids must not be NULL' using errcode = '22004';
  end if;
  if timeout is null or timeout < 0 then
    raise exception 'omni_kube: timeout must be 0 or more seconds, got %',
      coalesce(timeout::text, 'NULL') using errcode = '22023';
  end if;
  -- Made in this very transaction, savepoints included (its rows are seen here at any isolation
  -- level, stamped with its start): nothing is sent before it commits.
  select min(r.id) into missing from omni_kube.async_request r
   where r.id = any(ids) and r.state = 'queued' and r.created_at = now();
  if missing is not null then
    raise exception 'omni_kube: request % was made in this transaction, which must commit before it is sent',
      missing
      using errcode = '55000',
        hint = 'Commit, then call result() or results() in a later transaction.';
  end if;
  loop
    rows := omni_kube._async_rows(ids, false);
    -- Unknown ids and other roles' requests get the same answer: nobody learns which exist.
    select i into missing from unnest(ids) i
     where not exists (select from pg_roles r
                        where r.rolname = rows -> i::text ->> 'requested_by'
                          and pg_has_role(member, r.oid, 'MEMBER'))
     limit 1;
    if missing is not null then
      raise exception 'omni_kube: no asynchronous request % of role %', missing, member
        using errcode = 'OKQ04',
          hint = 'Give an id that api_async() returned to this role; finished requests are kept for the workers'' --retention.';
    end if;
    exit when not exists (select from jsonb_each(rows) e
                           where e.value ->> 'state' in ('queued', 'running'))
           or clock_timestamp() >= deadline;
    -- Short at first, since most calls take milliseconds; at most 50 ms later on.
    perform pg_sleep(least(pause, extract(epoch from deadline - clock_timestamp())));
    pause := least(pause * 2, 0.05);
  end loop;
  return omni_kube._async_rows(ids, true);
end
$$;
revoke all on function omni_kube._async_wait(bigint[], int) from public;

-- One async request's response, as api() would return it: waits up to `timeout` seconds (0: not
-- at all); raises as api() does for a status of 400 or more or no answer, with OKQ01 for a
-- request still unfinished, OKQ02 for one whose outcome a crash left unknown, OKQ03 for one whose
-- credentials a crash took.
create or replace function omni_kube.result(id bigint, timeout int default 30) returns jsonb
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  request constant jsonb := omni_kube._async_wait(array[id], timeout) -> id::text;
begin
  if request ->> 'state' in ('queued', 'running') then
    raise exception 'omni_kube: request % is still %', id, request ->> 'state'
      using errcode = 'OKQ01',
        detail = coalesce('Its last attempt: ' || (request ->> 'error'), ''),
        hint = 'Call result() again later, or with a longer timeout.';
  end if;
  if request ->> 'state' = 'done' and (request ->> 'status')::int < 400 then
    return request -> 'response';
  end if;
  perform omni_kube._raise_for(request ->> 'state', (request ->> 'status')::int2, request -> 'response',
                               request ->> 'error', request ->> 'call', request ->> 'error_code');
  return null; -- not reached: _raise_for raises
end
$$;
revoke all on function omni_kube.result(bigint, int) from public;
grant execute on function omni_kube.result(bigint, int) to omni_kube;

-- Many async requests' results, in input order, their statuses returned rather than raised (as
-- api()'s batch form returns them): a failed one has status 0 and a Status saying why; one still
-- unfinished after `timeout` seconds has neither status nor response.
create or replace function omni_kube.results(ids bigint[], timeout int default 30)
  returns table (id bigint, response jsonb, status int2)
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
  as $$
declare
  rows constant jsonb := omni_kube._async_wait(ids, timeout);
begin
  return query
    select i.id,
           case r ->> 'state' when 'done' then r -> 'response'
                              when 'failed' then omni_kube._transport_status(r ->> 'error',
                                                                             r ->> 'error_code')
           end,
           case r ->> 'state' when 'done' then (r ->> 'status')::int2 when 'failed' then 0::int2 end
      from unnest(ids) with ordinality as i(id, n)
      cross join lateral (select rows -> i.id::text) as x(r)
     order by i.n;
end
$$;
revoke all on function omni_kube.results(bigint[], int) from public;
grant execute on function omni_kube.results(bigint[], int) to omni_kube;
