-- The floor (bench/floor.ts): the cheapest implementation of the bridge's synchronous call shape.
-- A caller enqueues through dblink (so the request commits apart from its transaction), NOTIFY
-- carries the whole request to one worker, and the caller blocks on an advisory lock the worker
-- holds until the result is committed. No input checks, fairness, credentials or retention.
-- Installed by the bench into its own database; dropped at the end of the case.

create extension if not exists dblink;
create schema omni_kube_floor;

-- UNLOGGED, as the bridge's requests are: a call writes only its commit records to the WAL.
create unlogged table omni_kube_floor.request (
  id bigserial primary key,
  path text not null,
  state text not null default 'queued',
  status int2,
  response jsonb
);

-- The advisory lock (class, key) of a request. SQL functions without a SET clause: inlined, and
-- folded to constants in the plans of the statements that use them.
create function omni_kube_floor.lock_class() returns int4
  language sql immutable parallel safe
  as 'select 1718382447'; -- 'floo'

create function omni_kube_floor.lock_key(id bigint) returns int4
  language sql immutable parallel safe
  as 'select (id & 2147483647)::int4';

-- Runs in the caller's dblink connection: commits the request and wakes the worker with all it
-- needs in the payload, so the worker claims nothing.
create function omni_kube_floor.enqueue(path text) returns bigint
  language plpgsql
  as $$
declare
  request_id bigint;
begin
  insert into omni_kube_floor.request (path) values (enqueue.path) returning id into request_id;
  perform pg_notify('omni_kube_floor', request_id || ' ' || enqueue.path);
  return request_id;
end
$$;

-- A value quoted for a libpq connection string.
create function omni_kube_floor.libpq_quote(value text) returns text
  language sql immutable strict
  as $$ select '''' || replace(replace(value, '\', '\\'), '''', '\''') || '''' $$;

-- The dblink connection's libpq string: this server's unix socket, this database, this role.
create function omni_kube_floor.loopback() returns text
  language sql stable
  as $$
    select format('host=%s port=%s dbname=%s user=%s application_name=omni_kube_floor_dblink',
                  omni_kube_floor.libpq_quote(split_part(current_setting('unix_socket_directories'), ',', 1)),
                  current_setting('port'), omni_kube_floor.libpq_quote(current_database()),
                  omni_kube_floor.libpq_quote(current_user))
  $$;

-- dblink's functions are called by their schema (wherever the shim or this file installed
-- dblink): the callers' search_path does not have it, and a SET clause would cost every call.
do $do$
begin
  execute format($f$
create function omni_kube_floor.call(path text) returns jsonb
  language plpgsql
  as $body$
declare
  request_id bigint;
  request_state text;
  result jsonb;
  pause float8 := 0.0001;
begin
  -- Opened on first use in the session, and kept.
  if not coalesce('omni_kube_floor' = any (%1$s.dblink_get_connections()), false) then
    perform %1$s.dblink_connect('omni_kube_floor', omni_kube_floor.loopback());
  end if;
  select id into request_id
    from %1$s.dblink('omni_kube_floor', format('select omni_kube_floor.enqueue(%%L)', call.path))
      as t(id bigint);
  loop
    -- Returns when the worker commits the result, or at once if the worker does not hold the lock
    -- (an id beyond its window): then the row says whether to wait on.
    perform pg_advisory_lock_shared(omni_kube_floor.lock_class(), omni_kube_floor.lock_key(request_id));
    perform pg_advisory_unlock_shared(omni_kube_floor.lock_class(), omni_kube_floor.lock_key(request_id));
    select r.state, r.response into request_state, result
      from omni_kube_floor.request r where r.id = request_id;
    exit when request_state <> 'queued';
    perform pg_sleep(pause);
    pause := least(pause * 2, 0.01);
  end loop;
  if request_state = 'failed' then
    raise exception 'omni_kube_floor: %%', result ->> 0;
  end if;
  return result;
end
$body$;
  $f$, (select extnamespace::regnamespace::text from pg_extension where extname = 'dblink'));
end
$do$;
