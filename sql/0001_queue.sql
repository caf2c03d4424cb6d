-- The queue between SQL callers and the worker: requests, their credentials (unlogged), workers,
-- and the autonomous (dblink) channel through which callers commit requests independently of their
-- own transaction.

create schema if not exists omni_kube;

-- dblink runs the autonomous commits. If it is not installed yet it goes into a schema nobody else
-- may use: a dblink connection is shared by everything in its session, so whoever can call dblink
-- functions could use the shim's connection, which runs as the installing role.
do $$
begin
  if not exists (select from pg_extension where extname = 'dblink') then
    create schema if not exists omni_kube_dblink;
    revoke all on schema omni_kube_dblink from public;
    create extension dblink schema omni_kube_dblink;
  end if;
end
$$;

-- Calls only through these wrappers, created with dblink's schema spelled out, so that nothing on
-- a caller's search_path can stand in for dblink.
do $$
declare
  dblink_schema text := (select extnamespace::regnamespace::text from pg_extension where extname = 'dblink');
  fn regprocedure;
begin
  -- Wherever dblink lives, only its owner's code may use it: see above.
  for fn in select p.oid::regprocedure from pg_proc p join pg_depend d on d.objid = p.oid
            join pg_extension e on e.oid = d.refobjid where e.extname = 'dblink' loop
    execute format('revoke execute on function %s from public', fn);
  end loop;
  execute format($f$
    create or replace function omni_kube._autonomous_query(connection text, query text) returns jsonb
      language sql volatile
      as 'select value from %1$s.dblink(connection, query) as t(value jsonb)'$f$, dblink_schema);
  execute format($f$
    create or replace function omni_kube._autonomous_connections() returns text[]
      language sql volatile
      as 'select %1$s.dblink_get_connections()'$f$, dblink_schema);
  execute format($f$
    create or replace function omni_kube._autonomous_connect(connection text, connstr text) returns text
      language sql volatile
      as 'select %1$s.dblink_connect(connection, connstr)'$f$, dblink_schema);
  execute format($f$
    create or replace function omni_kube._autonomous_disconnect(connection text) returns text
      language sql volatile
      as 'select %1$s.dblink_disconnect(connection)'$f$, dblink_schema);
end
$$;
revoke all on function omni_kube._autonomous_query(text, text) from public;
revoke all on function omni_kube._autonomous_connections() from public;
revoke all on function omni_kube._autonomous_connect(text, text) from public;
revoke all on function omni_kube._autonomous_disconnect(text) from public;

create type omni_kube.http_method as enum ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS');

create type omni_kube.client_certificate as (
  certificate text,
  private_key text
);

create type omni_kube.request_state as enum ('queued', 'running', 'done', 'failed', 'cancelled');

-- Settings only the installing role may change (a caller-set GUC must not redirect the owner's
-- password-less autonomous connection).
create table omni_kube.instance_settings (
  name text primary key,
  value text not null
);
comment on table omni_kube.instance_settings is
  'loopback_connstr: libpq connection string for the autonomous connection (default: this server''s unix socket and port). worker_stale_after: interval after which a silent worker counts as dead.';
insert into omni_kube.instance_settings values ('worker_stale_after', '10 seconds');

create table omni_kube.workers (
  id uuid primary key,
  host text not null,
  pid int not null,
  -- The backend holding the worker's locks: callers test its liveness through pg_stat_activity.
  lock_backend_pid int not null,
  started_at timestamptz not null default now(),
  last_seen timestamptz not null default now()
);

create table omni_kube.request (
  id bigint generated always as identity primary key,
  kind text not null default 'api' check (kind in ('api', 'watch')),
  method omni_kube.http_method not null,
  path text not null,
  body jsonb,
  stream boolean not null default false,
  -- For PATCH: merge, json, strategic or apply (server-side apply); NULL infers from the body.
  patch_type text check (patch_type in ('merge', 'json', 'strategic', 'apply')),
  server text,
  timeout_ms int not null,
  -- Batch position, so that results come back in input order.
  batch_id bigint,
  position int,
  requested_by name not null,
  backend_pid int not null,
  statement_started timestamptz not null,
  -- sha256 of the call including a hash of its credentials: the per-statement GET cache key.
  digest bytea,
  state omni_kube.request_state not null default 'queued',
  status int2,
  response jsonb,
  error text,
  worker_id uuid,
  created_at timestamptz not null default clock_timestamp(),
  claimed_at timestamptz,
  finished_at timestamptz
);
create index request_queued on omni_kube.request (id) where state = 'queued';
create index request_digest on omni_kube.request (backend_pid, statement_started, digest)
  where digest is not null;
create index request_finished on omni_kube.request (finished_at) where finished_at is not null;

-- Never WAL-logged: not in a replica, a backup or a crash-recovered database. Deleted when the
-- worker claims the request.
create unlogged table omni_kube.request_credentials (
  request_id bigint primary key,
  use_worker_default boolean not null,
  cacert text,
  client_certificate text,
  client_private_key text,
  token text
);

revoke all on omni_kube.request, omni_kube.request_credentials, omni_kube.workers,
  omni_kube.instance_settings from public;

-- Lock keys: (class, request id) pairs for pg_advisory_lock(int4, int4).
create function omni_kube._lock_class() returns int4
  language sql immutable
  as 'select 1869442401'; -- 'omka'

create function omni_kube._lock_key(request_id bigint) returns int4
  language sql immutable
  as 'select (request_id % 2147483647)::int4';

-- The role that may use the bridge.
do $$
begin
  if not exists (select from pg_roles where rolname = 'omni_kube') then
    create role omni_kube nologin;
  end if;
end
$$;
grant usage on schema omni_kube to omni_kube;
grant usage on type omni_kube.http_method, omni_kube.client_certificate,
  omni_kube.request_state to public;
