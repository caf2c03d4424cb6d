-- How long a single call's first wait on its request's lock lasts, in ms, after a single call that
-- took `took_ms`. Anyone may hold or queue for a key (a member can read a held one in pg_locks), and
-- a wait behind them ends only with its slice, so a short one keeps that from delaying a call that
-- finished meanwhile much: half as long again as the session's last single call took, at least
-- 10 ms and at most 250 ms. (Under load a call takes tens of milliseconds: slices that all started
-- at 10 ms woke each caller three or four times per call, each wake a subtransaction's rollback
-- and two reads.)
create or replace function omni_kube._slice_after_ms(took_ms int) returns int
  language sql immutable parallel safe
  as $$ select least(greatest(took_ms operator(pg_catalog.*) 3 operator(pg_catalog./) 2, 10), 250) $$;
revoke all on function omni_kube._slice_after_ms(int) from public;

-- The first slice of this session's next single call: after the last one, which the waits keep in
-- omni_kube.last_call_ms when the slice it gives changes (a set_config costs a call about as much
-- as a read of its row), else 10 ms.
create or replace function omni_kube._single_call_slice_ms() returns int
  language sql stable
  as $$
    select case when pg_catalog.current_setting('omni_kube.last_call_ms', true)
                       operator(pg_catalog.~) '^[0-9]{1,6}$'
                then omni_kube._slice_after_ms(
                       pg_catalog.current_setting('omni_kube.last_call_ms', true)::pg_catalog.int4)
                else 10 end
  $$;
revoke all on function omni_kube._single_call_slice_ms() from public;

-- A statement_timeout that falls due with a lock wait's slice is reported as the slice's lock
-- timeout, and then never again: after a slice ended, report it as PostgreSQL would have.
create or replace function omni_kube._raise_if_statement_timed_out() returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if current_setting('statement_timeout') <> '0' and clock_timestamp()
       >= statement_timestamp() + current_setting('statement_timeout')::interval then
    raise exception 'canceling statement due to statement timeout' using errcode = '57014';
  end if;
end
$$;
revoke all on function omni_kube._raise_if_statement_timed_out() from public;

-- A single call's first wait (see _call): blocks on the request's lock for one slice. True if the
-- lock was had, which is when the worker committed the result, or at once when no worker holds
-- it yet (then the row says the request is still queued); false if the slice ended first. How
-- long a wait that ended with the lock took is kept for the session's next call.
create or replace function omni_kube._await_first(id bigint) returns boolean
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- The caller's lock_timeout must not cut the wait short, nor leave it without an end.
  set lock_timeout = 10
  as $$
declare
  slice_ms constant int := omni_kube._single_call_slice_ms();
  key constant int4 := omni_kube._lock_key(id, omni_kube._lock_salt());
  started constant timestamptz := clock_timestamp();
  took_ms int;
begin
  if slice_ms <> 10 then
    perform set_config('lock_timeout', slice_ms::text, true);
  end if;
  perform pg_advisory_lock_shared(omni_kube._lock_class(), key);
  perform pg_advisory_unlock_shared(omni_kube._lock_class(), key);
  took_ms := (extract(epoch from clock_timestamp() - started) * 1000)::int;
  if omni_kube._slice_after_ms(took_ms) <> slice_ms
     or current_setting('omni_kube.last_call_ms', true) is null then
    perform set_config('omni_kube.last_call_ms', took_ms::text, false);
  end if;
  return true;
exception when lock_not_available then
  perform omni_kube._raise_if_statement_timed_out();
  return false;
end
$$;
revoke all on function omni_kube._await_first(bigint) from public;

-- Waits until every request in `ids` has finished. (A cancelled statement is _call's to handle.)
create or replace function omni_kube._await(ids bigint[], timeout_ms int) returns void
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  -- The caller's lock_timeout must not cut a wait short: each wait lasts a slice (below).
  set lock_timeout = 10
  as $$
declare
  lock_class constant int4 := omni_kube._lock_class();
  salt constant int4 := omni_kube._lock_salt();
  -- How long the first wait on a lock lasts, in ms: a batch's 10, a single call's as its last.
  first_slice_ms constant int := case when cardinality(ids) = 1
                                      then omni_kube._single_call_slice_ms() else 10 end;
  -- How long one wait on a lock lasts, in ms: the first slice, doubled up to a second while the
  -- head stays unfinished (a long one keeps long calls cheap to wait for).
  slice_ms int := first_slice_ms;
  started constant timestamptz := clock_timestamp();
  took_ms int;
  -- The worker bounds each call by timeout_ms; the margin covers queueing and write-back.
  deadline constant timestamptz := clock_timestamp() + make_interval(secs => timeout_ms / 1000.0 + 5);
  -- (A single call, the usual case, skips the statements that sort and filter arrays.)
  pending bigint[] := case when cardinality(ids) = 1 then ids end;
  -- Each step reads the states of the first `chunk` pending requests: requests finish about in
  -- queue order, so the rest are read when they come near the head. (Reading all of a large batch
  -- at every step made the wait quadratic.) The chunk doubles, up to its largest, while every
  -- request it read had finished, and is smallest again once one had not: a wake reads about what
  -- finished since the last, where a fixed 256 had a batch of 1,000 read 256 rows at each of a few
  -- hundred wakes, a fifth of a millisecond of the caller's CPU per request.
  smallest_chunk constant int := 16;
  largest_chunk constant int := 256;
  chunk int := smallest_chunk;
  unfinished jsonb;
  head bigint;
  head_state text;
  checked int;
  backoff float8 := 0.0005;
  no_worker_since timestamptz;
  -- Whether the last wait ended with its slice, the key held all along (else it was free).
  waited_out boolean;
  -- Since when the head has been the head: once that is a while, liveness is read thoroughly.
  head_since timestamptz := clock_timestamp();
  thorough boolean;
  head_worker uuid;
  head_cluster text;
  -- Whether a live worker may take the queued head.
  served boolean;
  -- (Whether a plain read sees what finished since the statement began; see _unfinished.)
  read_committed constant boolean := current_setting('transaction_isolation') = 'read committed';
begin
  if pending is null then
    pending := array(select distinct id from unnest(ids) id order by id);
  end if;
  if slice_ms <> 10 then
    perform set_config('lock_timeout', slice_ms::text, true);
  end if;
  loop
    -- The worker holds each request's lock until the request's result is committed, so this
    -- returns when the head of the queue is done, or after its slice (lock_timeout), so that a
    -- stuck worker, or anyone else holding the key, only delays the checks below.
    head := pending[1];
    waited_out := false;
    begin
      perform pg_advisory_lock_shared(lock_class, omni_kube._lock_key(head, salt));
      perform pg_advisory_unlock_shared(lock_class, omni_kube._lock_key(head, salt));
    exception when lock_not_available then
      waited_out := true;
      perform omni_kube._raise_if_statement_timed_out();
      if slice_ms < 1000 then
        slice_ms := least(slice_ms * 2, 1000);
        perform set_config('lock_timeout', slice_ms::text, true);
      end if;
    end;
    checked := least(cardinality(pending), chunk);
    if cardinality(pending) = 1 and read_committed then
      -- _unfinished's read, without a function call and an aggregate: a single call's wait
      -- usually reads once, and finds its request finished.
      select jsonb_build_object(r.id, jsonb_build_object('state', r.state, 'worker_id', r.worker_id,
                                                         'cluster', r.cluster))
        into unfinished
        from omni_kube.request r where r.id = head and r.state in ('queued', 'running');
      unfinished := coalesce(unfinished, '{}');
    else
      unfinished := omni_kube._unfinished(pending[1:checked]);
    end if;
    if cardinality(pending) = 1 then
      if unfinished = '{}' then
        pending := '{}';
      end if;
    else
      pending := array(select p from unnest(pending[1:checked]) with ordinality as u(p, n)
                        where unfinished ? p::text order by n)
                 || pending[checked + 1:];
    end if;
    if cardinality(pending) = 0 then
      took_ms := (extract(epoch from clock_timestamp() - started) * 1000)::int;
      if cardinality(ids) = 1 and (omni_kube._slice_after_ms(took_ms) <> first_slice_ms
                                   or current_setting('omni_kube.last_call_ms', true) is null) then
        perform set_config('omni_kube.last_call_ms', took_ms::text, false);
      end if;
      exit;
    end if;
    head_state := unfinished -> head::text ->> 'state';
    chunk := case when unfinished = '{}' then least(chunk * 2, largest_chunk)
                   else smallest_chunk end;
    if head_state is null then
      -- Progress: the next wait starts with a short sleep and a short slice again.
      backoff := 0.0005;
      head_since := clock_timestamp();
      if slice_ms > first_slice_ms then
        slice_ms := first_slice_ms;
        perform set_config('lock_timeout', slice_ms::text, true);
      end if;
      continue;
    end if;
    if clock_timestamp() > deadline then
      perform omni_kube._abandon(pending, 'timed out waiting for a worker');
      raise exception 'omni_kube: timed out after % ms waiting for the worker', timeout_ms
        using errcode = 'OKT02',
          hint = 'The worker may be overloaded; raise omni_kube.request_timeout or add workers.';
    end if;
    -- Liveness is read from the workers' locks; after a second on this head, from their backends
    -- too (a member may hold a dead worker's key).
    thorough := clock_timestamp() - head_since > interval '1 second';

    if head_state = 'running' then
      head_worker := (unfinished -> head::text ->> 'worker_id')::uuid;
      if omni_kube._worker_locked(head_worker)
         and (not thorough or omni_kube._worker_alive(head_worker)) then
        -- Its worker runs it: wait on its lock again, at once if the key was held all along.
        if waited_out then
          continue;
        end if;
      else
        perform omni_kube._autonomous(
          format('select omni_kube._cancel_dead_worker_requests(%L)', array[head]));
        continue;
      end if;
    -- Queued: not yet covered by a worker's locks, or no worker is left to take it (for a named
    -- cluster, none that serves it).
    else
      head_cluster := unfinished -> head::text ->> 'cluster';
      if head_cluster is null then
        served := omni_kube._worker_locked() and (not thorough or omni_kube._worker_alive());
      else
        served := omni_kube._cluster_served(head_cluster, thorough);
      end if;
      if served then
        no_worker_since := null;
      else
        no_worker_since := coalesce(no_worker_since, clock_timestamp());
        if clock_timestamp() - no_worker_since > interval '3 seconds' then
          if head_cluster is not null then
            perform omni_kube._abandon(pending,
                                       format('no worker serving cluster %s was alive to run it',
                                              head_cluster));
            perform omni_kube._raise_unserved(head_cluster);
          end if;
          perform omni_kube._abandon(pending, 'no worker was alive to run it');
          raise exception 'omni_kube: no worker is running'
            using errcode = 'OKW01',
              hint = 'Start one: deno task start (see the README), with DATABASE_URL pointing at this database.';
        end if;
      end if;
    end if;
    perform pg_sleep(backoff);
    backoff := least(backoff * 2, 0.05);
  end loop;
end
$$;
revoke all on function omni_kube._await(bigint[], int) from public;
